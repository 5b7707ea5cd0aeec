//! Records the build's git commit and date for `--version`.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    build_info::emit(&manifest);
}

/// `EWS_BUILD_COMMIT` (the git commit, or "unknown" outside a git checkout)
/// and `EWS_BUILD_DATE` (UTC, from `SOURCE_DATE_EPOCH` when set, so that a
/// rebuild of the same source is identical) for `--version`.
mod build_info {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn git(manifest: &Path, args: &[&str]) -> Option<String> {
        let output = Command::new("git")
            .args(args)
            .current_dir(manifest)
            .output()
            .ok()?;
        let text = String::from_utf8(output.stdout).ok()?.trim().to_owned();
        (output.status.success() && !text.is_empty()).then_some(text)
    }

    /// Reruns when HEAD moves: HEAD itself (a checkout) and the branch it
    /// names (a commit), loose or packed. Only existing files are named: a
    /// missing one would make cargo rerun this script on every build.
    fn watch_head(manifest: &Path) {
        let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
        if let Some(branch) = git(manifest, &["symbolic-ref", "-q", "HEAD"]) {
            watched.push(branch);
        }
        for name in watched {
            if let Some(path) = git(manifest, &["rev-parse", "--git-path", &name]) {
                let path = manifest.join(PathBuf::from(path));
                if path.is_file() {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
        }
    }

    /// The civil date of a day count since 1970-01-01 (Howard Hinnant's
    /// `civil_from_days`).
    fn civil_date(days: i64) -> (i64, u32, u32) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        (year, month, day)
    }

    fn build_date() -> String {
        println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
        let seconds = match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(text) => text.trim().parse::<i64>().unwrap_or_else(|_| {
                panic!("SOURCE_DATE_EPOCH={text:?} is not a number of seconds since 1970; unset it or give e.g. $(git log -1 --format=%ct)")
            }),
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        };
        let (year, month, day) = civil_date(seconds.div_euclid(86_400));
        format!("{year:04}-{month:02}-{day:02}")
    }

    pub fn emit(manifest: &Path) {
        watch_head(manifest);
        let commit = git(manifest, &["rev-parse", "--short=12", "HEAD"])
            .unwrap_or_else(|| "unknown".to_owned());
        println!("cargo:rustc-env=EWS_BUILD_COMMIT={commit}");
        println!("cargo:rustc-env=EWS_BUILD_DATE={}", build_date());
    }
}
