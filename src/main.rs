//! The `ews-calendar-replicator` command line. Today it runs the simulators;
//! the service commands (run, once, check, status, demo) come with the
//! replication engine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ews_calendar_replicator::sim::tls::TestPki;
use ews_calendar_replicator::sim::ucserver::{UcServerSim, UcServerSimConfig, UserDatabase};

#[derive(Parser)]
#[command(name = "ews-calendar-replicator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a simulated server on this machine, for trying the replicator and
    /// for tests.
    Sim {
        #[command(subcommand)]
        server: SimServer,
    },
}

#[derive(Subcommand)]
enum SimServer {
    /// A simulated estos UCServer (web service and ROSE over WebSocket).
    Ucserver(UcServerArgs),
}

#[derive(Args)]
struct UcServerArgs {
    /// Address to listen on (the real server's defaults are 7224 for HTTP and
    /// 7225 for HTTPS).
    #[arg(long, default_value = "127.0.0.1:7224")]
    listen: SocketAddr,
    /// Users to generate (ignored with --users-file).
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// Share of generated users that are not logged on (0.0 to 1.0).
    #[arg(long, default_value_t = 0.5)]
    offline_fraction: f64,
    /// Seed of the generated users (same seed, same users).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A JSON user database instead of generated users.
    #[arg(long)]
    users_file: Option<PathBuf>,
    /// The administrator account of generated users.
    #[arg(long, default_value = "ucadmin")]
    admin_user: String,
    /// The administrator's password (generated users only).
    #[arg(long, default_value = "ucadmin")]
    admin_password: String,
    /// Serve HTTPS with a certificate from a generated test CA, whose PEM is
    /// written to this file (give it to the client as `ca_file`).
    #[arg(long)]
    tls_ca_out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim {
            server: SimServer::Ucserver(args),
        } => sim_ucserver(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn sim_ucserver(args: UcServerArgs) -> Result<(), String> {
    if !(0.0..=1.0).contains(&args.offline_fraction) {
        return Err(format!(
            "--offline-fraction {} is not between 0.0 and 1.0",
            args.offline_fraction
        ));
    }
    let users = match &args.users_file {
        Some(path) => UserDatabase::from_json_file(path).map_err(|e| e.to_string())?,
        None => UserDatabase::generate(
            args.users,
            args.offline_fraction,
            args.seed,
            &args.admin_user,
            &args.admin_password,
        ),
    };
    let tls = match &args.tls_ca_out {
        Some(path) => {
            let pki = TestPki::generate(&[]).map_err(|e| e.to_string())?;
            pki.write_ca_pem(path)
                .map_err(|e| format!("cannot write the test CA to {}: {e}", path.display()))?;
            println!("test CA written to {}", path.display());
            Some(pki.server_config())
        }
        None => None,
    };
    let sim = UcServerSim::start_on(args.listen, UcServerSimConfig::new(users), tls)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let all = sim.users();
    let offline = all.iter().filter(|u| !u.online).count();
    println!("simulated UCServer at {}", sim.base_url());
    println!(
        "{} users, {offline} not logged on; administrator: {}",
        all.len(),
        all.iter()
            .filter(|u| u.admin)
            .map(|u| u.user_name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("press Ctrl-C to stop");
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    println!(
        "stopped after {} appointment list writes",
        sim.total_writes()
    );
    Ok(())
}
