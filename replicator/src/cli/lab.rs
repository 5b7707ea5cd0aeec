//! `sim lab --dir DIR`: the UCServer and Exchange simulators with matching
//! users, and what the replicator needs to use them written into DIR (a
//! configuration, the test CAs, password files, a static directory), so
//! `check`, `once`, `run` and `status` can be tried as against real servers.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use clap::Args;
use ews_calendar_replicator::sim::ucserver::{UcServerSim, UcServerSimConfig, UserDatabase};
use ews_toolkit::sim::exchange::{
    generate, ExchangeSim, ExchangeSimConfig, GenerateSpec, SimAccount,
};
use ews_toolkit::sim::tls::TestPki;

const ADMIN_USER: &str = "ucadmin";
const EWS_DOMAIN: &str = "LAB";
const EWS_USER: &str = "svc-calendar";

#[derive(Args)]
pub struct LabArgs {
    /// Folder for config.toml and the files it names (created; kept after
    /// stopping, with the state database and logs).
    #[arg(long)]
    dir: PathBuf,
    /// UCServer users, each with an Exchange mailbox.
    #[arg(long, default_value_t = 20)]
    users: usize,
    /// Share of users not logged on (0.0 to 1.0); only they are replicated.
    #[arg(long, default_value_t = 0.6)]
    offline_fraction: f64,
    /// Calendar items per mailbox, around now.
    #[arg(long, default_value_t = 10)]
    events: usize,
    /// Seed of the generated users and calendars.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// A password for this run: 16 random bytes from the kernel, as hex.
fn random_password() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom for a password: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `text` to `path` readable by its owner only, replacing it
/// atomically: whoever waits for the file sees all of it or nothing.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    let error = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let partial = path.with_extension("partial");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(error)?;
    file.write_all(text.as_bytes()).map_err(error)?;
    file.sync_all().map_err(error)?;
    fs::rename(&partial, path).map_err(error)
}

fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn quoted_path(path: &Path) -> String {
    quoted(&path.display().to_string())
}

pub async fn sim_lab(args: LabArgs) -> Result<(), String> {
    if !(0.0..=1.0).contains(&args.offline_fraction) {
        return Err(format!(
            "--offline-fraction {} is not between 0.0 and 1.0",
            args.offline_fraction
        ));
    }
    if args.users == 0 {
        return Err("--users 0: give at least one user".to_owned());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&args.dir)
        .map_err(|e| format!("cannot create {}: {e}", args.dir.display()))?;
    let dir = args
        .dir
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", args.dir.display()))?;

    // UCServer: generated users (plus the administrator), served over TLS.
    let admin_password = random_password()?;
    let people = UserDatabase::generate(
        args.users,
        args.offline_fraction,
        args.seed,
        ADMIN_USER,
        &admin_password,
    );
    let pki = TestPki::generate(&[]).map_err(|e| e.to_string())?;
    let ucserver_ca = dir.join("ucserver-ca.pem");
    pki.write_ca_pem(&ucserver_ca)
        .map_err(|e| format!("cannot write {}: {e}", ucserver_ca.display()))?;
    let ucserver = UcServerSim::start_on(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        UcServerSimConfig::new(people),
        Some(pki.server_config()),
    )
    .await
    .map_err(|e| format!("cannot start the UCServer simulator: {e}"))?;
    // The administrator too: an offline UCServer user without a directory
    // entry would be reported as skipped in every cycle.
    let users = ucserver.users();

    // Exchange: one mailbox per UCServer user, at the user's address.
    let mut mailboxes = generate(&GenerateSpec {
        users: users.len(),
        events_per_user: args.events,
        seed: args.seed,
        domain: "lab.example".into(),
        now: chrono::Utc::now(),
    })
    .mailboxes;
    for (mailbox, user) in mailboxes.iter_mut().zip(&users) {
        mailbox.smtp = user.email.clone();
        mailbox.display_name = user.display_name.clone();
    }
    let ews_password = random_password()?;
    let mut exchange_config = ExchangeSimConfig::new(mailboxes);
    exchange_config.tls = true;
    exchange_config.extended_protection = true;
    exchange_config.accounts = vec![SimAccount::new(EWS_DOMAIN, EWS_USER, &ews_password)];
    let exchange = ExchangeSim::start(exchange_config)
        .await
        .map_err(|e| format!("cannot start the Exchange simulator: {e}"))?;
    let exchange_ca = dir.join("exchange-ca.pem");
    exchange
        .write_ca_pem(&exchange_ca)
        .map_err(|e| format!("cannot write {}: {e}", exchange_ca.display()))?;

    // The directory: the UCServer users and their mailboxes.
    let mut directory =
        String::from("# sim lab: the simulated UCServer's users and their simulated mailboxes\n");
    for user in &users {
        let _ = write!(
            directory,
            "\n[[user]]\nobject_guid = {}\ndn = {}\nsam_account_name = {}\nsmtp = {}\n",
            quoted(&user.object_guid),
            quoted(&user.dn),
            quoted(&user.sam_account_name),
            quoted(&user.email)
        );
    }
    let directory_file = dir.join("users.toml");
    write_private(&directory_file, &directory)?;
    let ucserver_password = dir.join("ucserver.password");
    write_private(&ucserver_password, &admin_password)?;
    let exchange_password = dir.join("exchange.password");
    write_private(&exchange_password, &ews_password)?;

    let config_file = dir.join("config.toml");
    let config = format!(
        "# Written by `ews-calendar-replicator sim lab`: the simulators it runs.\n\
         \n[ucserver]\nurl = {}\nusername = {}\npassword_file = {}\nca_file = {}\n\
         \n[directory]\nkind = \"static\"\nfile = {}\n\
         \n[exchange]\nurl = {}\nusername = {}\npassword_file = {}\nca_file = {}\n\
         \n[replication]\ninterval_minutes = 1\n\
         \n[logging]\ndirectory = {}\n\
         \n[state]\npath = {}\n",
        quoted(ucserver.base_url().as_str()),
        quoted(ADMIN_USER),
        quoted_path(&ucserver_password),
        quoted_path(&ucserver_ca),
        quoted_path(&directory_file),
        quoted(exchange.ews_url().as_str()),
        quoted(&format!("{EWS_DOMAIN}\\{EWS_USER}")),
        quoted_path(&exchange_password),
        quoted_path(&exchange_ca),
        quoted_path(&dir.join("logs")),
        quoted_path(&dir.join("state.sqlite")),
    );
    write_private(&config_file, &config)?;

    let offline = users.iter().filter(|u| !u.online).count();
    let config_arg = config_file.display();
    println!(
        "simulated UCServer at {} ({} users with the administrator, {offline} not logged on)",
        ucserver.base_url(),
        users.len()
    );
    println!(
        "simulated Exchange at {} (account {EWS_DOMAIN}\\{EWS_USER}, NTLMv2 with channel binding)",
        exchange.ews_url()
    );
    println!("configuration written to {config_arg}; try, in another terminal:");
    println!("  ews-calendar-replicator check -c {config_arg}");
    println!("  ews-calendar-replicator once -c {config_arg} --dry-run");
    println!(
        "  ews-calendar-replicator run -c {config_arg}     (a cycle every minute; Ctrl-C stops it)"
    );
    println!("  ews-calendar-replicator status -c {config_arg}");
    println!("press Ctrl-C to stop the simulators");
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    println!(
        "stopped after {} appointment list writes; {} is kept",
        ucserver.total_writes(),
        dir.display()
    );
    Ok(())
}
