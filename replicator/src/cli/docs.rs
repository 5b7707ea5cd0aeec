//! `ews-calendar-replicator generate-docs --out-dir DIR`: the man pages and
//! shell completions, generated from the command line's own definition so
//! they cannot drift from it. The Debian package's build
//! (packaging/build-deb.sh) runs it. It is not part of that definition
//! (clap_complete would offer even a hidden subcommand), so `main` asks here
//! first.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use clap_complete::Shell;

const SUBCOMMAND: &str = "generate-docs";

#[derive(Parser)]
#[command(
    name = "ews-calendar-replicator generate-docs",
    about = "Write the man pages and shell completions of this command line."
)]
struct DocsArgs {
    /// Folder to write `man/*.1` and `completions/` (bash, zsh, fish) into.
    #[arg(long)]
    out_dir: PathBuf,
}

/// Runs `generate-docs` when it is the first argument, with the command
/// line definition `command` builds.
pub fn run_if_asked(command: impl FnOnce() -> clap::Command) -> Option<ExitCode> {
    let mut args = std::env::args_os();
    let program = args.next()?;
    let first = args.next()?;
    if first != SUBCOMMAND {
        return None;
    }
    let docs = DocsArgs::parse_from(std::iter::once(program).chain(args));
    Some(match generate(command(), &docs.out_dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    })
}

fn create_dir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

fn generate(mut command: clap::Command, out_dir: &Path) -> Result<(), String> {
    let man = out_dir.join("man");
    let completions = out_dir.join("completions");
    create_dir(&man)?;
    create_dir(&completions)?;
    // One page for the command and one per subcommand, as
    // `ews-calendar-replicator-check(1)`.
    clap_mangen::generate_to(command.clone(), &man)
        .map_err(|e| format!("cannot write the man pages to {}: {e}", man.display()))?;
    let name = command.get_name().to_owned();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command, &name, &completions).map_err(|e| {
            format!(
                "cannot write the {shell} completion to {}: {e}",
                completions.display()
            )
        })?;
    }
    println!(
        "man pages in {}, completions in {}",
        man.display(),
        completions.display()
    );
    Ok(())
}
