//! Generates the EWS bindings into OUT_DIR from `wsdl/` (or, with
//! `EWS_SCHEMA_DIR`, from a server's own Services.wsdl/messages.xsd/types.xsd,
//! restricted to the operations and parts in `wsdl/`), and records the build's
//! git commit and date for `--version`.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    bindings(&manifest, &out_dir);
    build_info::emit(&manifest);
}

fn bindings(manifest: &Path, out_dir: &Path) {
    println!("cargo:rerun-if-env-changed=EWS_SCHEMA_DIR");
    let schema_dir = std::env::var_os("EWS_SCHEMA_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(dir) = &schema_dir {
        for file in ews_codegen::SCHEMA_FILES {
            if !dir.join(file).is_file() {
                panic!(
                    "EWS_SCHEMA_DIR={} has no {file}: download Services.wsdl, messages.xsd and types.xsd \
                     from https://<your-exchange-server>/ews/ into that folder, or unset EWS_SCHEMA_DIR",
                    dir.display()
                );
            }
        }
    }
    // This script also reruns on every commit (for --version); the bindings
    // are generated again only when their inputs or this script changed.
    let stamp = codegen_stamp::Stamp::new(out_dir, schema_dir.as_deref());
    if let Some(inputs) = stamp.unchanged_inputs() {
        for input in inputs {
            println!("cargo:rerun-if-changed={}", input.display());
        }
        return;
    }
    let options = ews_codegen::Options {
        subset_dir: manifest.join("wsdl"),
        schema_dir,
        out_dir: out_dir.to_owned(),
    };
    match ews_codegen::generate(&options) {
        Ok(generated) => {
            for input in &generated.inputs {
                println!("cargo:rerun-if-changed={}", input.display());
            }
            stamp.write(&generated.inputs);
        }
        Err(e) => panic!("generating the EWS bindings failed: {e}"),
    }
}

/// Remembers what the bindings in OUT_DIR were generated from: this build
/// script's own binary (it changes with the codegen crate), `EWS_SCHEMA_DIR`
/// and each input's size and modification time.
mod codegen_stamp {
    use std::path::{Path, PathBuf};

    pub struct Stamp {
        file: PathBuf,
        header: String,
    }

    fn fingerprint(path: &Path) -> Option<String> {
        let meta = std::fs::metadata(path).ok()?;
        let modified = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(format!("{} {}", meta.len(), modified.as_nanos()))
    }

    impl Stamp {
        pub fn new(out_dir: &Path, schema_dir: Option<&Path>) -> Stamp {
            let script = std::env::current_exe()
                .ok()
                .and_then(|exe| fingerprint(&exe))
                .unwrap_or_default();
            Stamp {
                file: out_dir.join("codegen.stamp"),
                header: format!("script {script}\nschema {schema_dir:?}\n"),
            }
        }

        /// The inputs, when the stamp matches all of them.
        pub fn unchanged_inputs(&self) -> Option<Vec<PathBuf>> {
            let text = std::fs::read_to_string(&self.file).ok()?;
            let rest = text.strip_prefix(&self.header)?;
            let mut inputs = Vec::new();
            for line in rest.lines() {
                let (print, path) = line.split_once('\t')?;
                let path = PathBuf::from(path);
                if fingerprint(&path).as_deref() != Some(print) {
                    return None;
                }
                inputs.push(path);
            }
            (!inputs.is_empty()).then_some(inputs)
        }

        pub fn write(&self, inputs: &[PathBuf]) {
            let mut text = self.header.clone();
            for input in inputs {
                let Some(print) = fingerprint(input) else {
                    // Without a fingerprint the next run generates again.
                    let _ = std::fs::remove_file(&self.file);
                    return;
                };
                text.push_str(&format!("{print}\t{}\n", input.display()));
            }
            if let Err(e) = std::fs::write(&self.file, text) {
                println!("cargo:warning=cannot write {}: {e}", self.file.display());
            }
        }
    }
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
