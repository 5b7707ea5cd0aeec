//! `generate-docs` (hidden): the man pages and shell completions, generated
//! from the command line's own definition so they cannot drift from it. The
//! Debian package's build (packaging/build-deb.sh) runs it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use clap_complete::Shell;

#[derive(Args)]
pub struct DocsArgs {
    /// Folder to write `man/*.1` and `completions/` (bash, zsh, fish) into.
    #[arg(long)]
    out_dir: PathBuf,
}

fn create_dir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

pub fn generate(mut command: clap::Command, args: DocsArgs) -> Result<ExitCode, String> {
    let man = args.out_dir.join("man");
    let completions = args.out_dir.join("completions");
    create_dir(&man)?;
    create_dir(&completions)?;
    // One page for the command and one per (visible) subcommand, as
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
    Ok(ExitCode::SUCCESS)
}
