//! The `ews-calendar-replicator` command line: the service (`run`), one cycle
//! (`once`), diagnostics (`check`, `status`), `config init`, the `demo`, and
//! the simulators (`sim`).

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory as _, Parser, Subcommand};
use ews_calendar_replicator::config::{default_config_path, LoadContext};

use cli::sim::SimServer;

/// `--version`: the version, the git commit and the build date (build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("EWS_BUILD_COMMIT"),
    ", built ",
    env!("EWS_BUILD_DATE"),
    ")"
);

#[derive(Parser)]
#[command(name = "ews-calendar-replicator", version = VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct ConfigArg {
    /// The configuration file (default: /etc/ews-calendar-replicator/config.toml
    /// as root, else ~/.config/ews-calendar-replicator/config.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

impl ConfigArg {
    fn path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| default_config_path(&LoadContext::from_process()))
    }
}

// Parsed once at start-up: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the service: a replication cycle every interval until SIGTERM or
    /// SIGINT (systemd: Type=notify).
    Run(ConfigArg),
    /// Run one cycle and print what happened per user.
    #[command(after_help = "Exit codes:\n  \
        0  nothing failed (users skipped by rule, such as the UCServer's administrator or a user without a mailbox, are not failures)\n  \
        1  some users failed (or were not handled because the run was interrupted)\n  \
        2  the cycle could not run: the configuration, the state database, or a server (UCServer, directory) unreachable")]
    Once(cli::service::OnceArgs),
    /// Test the configuration: directory, Exchange and UCServer, each step
    /// with pass/fail and the fix.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Print the steps as JSON.
        #[arg(long)]
        json: bool,
        /// The mailbox of the test availability query (default: that of the
        /// first UCServer user found in the directory).
        #[arg(long)]
        mailbox: Option<String>,
    },
    /// The last cycles and the users that failed, from the state database.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
        /// How many cycles to show.
        #[arg(long, default_value_t = 10)]
        cycles: usize,
    },
    /// Configuration file commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// A demonstration without any server: simulated Exchange and UCServer
    /// with a generated organisation, three cycles, and what reached the
    /// UCServer.
    Demo(cli::demo::DemoArgs),
    /// Run a simulated server on this machine, for trying the replicator and
    /// for tests.
    Sim {
        #[command(subcommand)]
        server: SimServer,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Write a commented configuration file, asking for the values.
    Init {
        /// Where to write it (default: the default configuration path).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Where to write it, as `config init PATH` (the same as -c PATH).
        #[arg(value_name = "PATH", conflicts_with = "config")]
        path: Option<PathBuf>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

/// Keeps passwords out of core dumps and away from other processes of the
/// same user: a non-dumpable process writes no core file, and only root may
/// ptrace it or read its memory, environment and file descriptors under
/// /proc. Done first, before any configuration (and password) is read.
fn forbid_core_dumps() {
    // SAFETY: PR_SET_DUMPABLE takes one integer argument and touches no
    // memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        eprintln!(
            "warning: cannot mark the process non-dumpable ({}); a core dump would hold the passwords: set LimitCORE=0 (systemd) or ulimit -c 0",
            std::io::Error::last_os_error()
        );
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    forbid_core_dumps();
    ews_calendar_replicator::memory::tune_allocator();
    // Outside the command line it documents, so that the man pages and
    // completions do not offer it.
    if let Some(code) = cli::docs::run_if_asked(Cli::command) {
        return code;
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(config) => cli::service::run(&config.path()).await,
        Command::Once(args) => cli::service::once(args).await,
        Command::Check {
            config,
            json,
            mailbox,
        } => cli::check::check(&config.path(), json, mailbox).await,
        Command::Status {
            config,
            json,
            cycles,
        } => cli::status::status(&config.path(), json, cycles),
        Command::Config {
            command:
                ConfigCommand::Init {
                    config,
                    path,
                    force,
                },
        } => cli::config_init(config.or(path), force),
        Command::Demo(args) => cli::demo::demo(args).await,
        Command::Sim {
            server: SimServer::Ucserver(args),
        } => cli::sim::sim_ucserver(args)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Sim {
            server: SimServer::Exchange(args),
        } => cli::sim::sim_exchange(args)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Sim {
            server: SimServer::Lab(args),
        } => cli::lab::sim_lab(args).await.map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
