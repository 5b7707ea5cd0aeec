//! The commands behind `main`'s argument parsing; each prints for an
//! administrator (or JSON) and returns the exit code.

pub mod check;
pub mod demo;
pub mod docs;
pub mod lab;
pub mod output;
pub mod progress;
pub mod service;
pub mod sim;
pub mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use ews_calendar_replicator::config::init::{init, Prompter};
use ews_calendar_replicator::config::{self, default_config_path, Config, LoadContext};

/// Loads the configuration, or says which file and key is wrong.
pub fn load_config(path: &std::path::Path) -> Result<Config, String> {
    config::load(path).map_err(|e| e.to_string())
}

/// `config init`.
pub fn config_init(path: Option<PathBuf>, force: bool) -> Result<ExitCode, String> {
    let context = LoadContext::from_process();
    let target = path.unwrap_or_else(|| default_config_path(&context));
    let mut prompter = Prompter::terminal();
    let written = init(&mut prompter, &target, force, &context).map_err(|e| e.to_string())?;
    println!(
        "configuration written to {}; test it with: ews-calendar-replicator check --config {}",
        written.display(),
        written.display()
    );
    Ok(ExitCode::SUCCESS)
}
