//! The laboratory every test of the binary uses: the Samba test domain
//! controller (or a static directory built from its users), the Exchange
//! simulator (TLS, NTLMv2 with Extended Protection) and the UCServer
//! simulator with one generated organisation, a configuration file for the
//! binary, the binary run against them ([`run_binary`]), and the checks the
//! fault matrix's rows share (what the UCServer holds, what `status --json`
//! says).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Utc};
use ews_calendar_replicator::directory::{
    AdDirectory, DirectorySettings, DirectoryUser, Secret, UserDirectory,
};
use ews_calendar_replicator::sim::ucserver::{
    SimUser, UcServerSim, UcServerSimConfig, UserDatabase,
};
use ews_calendar_replicator::ucserver::asn::AsnAppointmentEntry;
use ews_toolkit::sim::exchange::{
    ExchangeSim, ExchangeSimConfig, Permission, SimAccount, SimBusyType, SimEvent, SimMailbox,
};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_ews-calendar-replicator");
pub const UC_PASSWORD: &str = "Uc-Adm1n-Secret!";
pub const EWS_PASSWORD: &str = "Ews-Svc-Secret!";
/// Appears only in private appointments (subject and location).
pub const PRIVATE_MARKER: &str = "PRIVATE-MARKER-9c1e";
pub const USERS: usize = 9;

pub fn test_dc() -> HashMap<String, String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/test-dc.sh");
    let output = std::process::Command::new(&script)
        .arg("env")
        .output()
        .expect("run scripts/test-dc.sh env");
    assert!(
        output.status.success(),
        "these tests need the Samba test domain controller (scripts/test-dc.sh start; .ci/run starts it): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

/// Busy, tentative, private (skipped by default) and out-of-office.
pub fn events(now: DateTime<Utc>, n: usize) -> Vec<SimEvent> {
    let day = now.duration_trunc(ChronoDuration::hours(1)).unwrap() + ChronoDuration::days(1);
    let event = |id: &str, hours: i64, busy: SimBusyType, subject: &str, private: bool| SimEvent {
        id: id.into(),
        start: day + ChronoDuration::hours(hours),
        end: day + ChronoDuration::hours(hours + 1),
        busy_type: busy,
        subject: Some(subject.into()),
        location: Some(if private {
            format!("{PRIVATE_MARKER} room")
        } else {
            "Room 1".into()
        }),
        private,
        meeting: true,
        all_day: false,
        recurrence: None,
    };
    vec![
        event(
            "busy",
            0,
            SimBusyType::Busy,
            &format!("Planning {n}"),
            false,
        ),
        event("tentative", 2, SimBusyType::Tentative, "Maybe", false),
        event("private", 4, SimBusyType::Busy, PRIVATE_MARKER, true),
        event("oof", 30, SimBusyType::OutOfOffice, "Away", false),
    ]
}

/// How the laboratory is set up.
pub struct LabOptions {
    /// Generated directory users taken from the test DC ([`USERS`] unless
    /// a test needs more).
    pub users: usize,
    /// Appended to the `[replication]` section.
    pub replication: String,
    /// `[directory] kind = "static"` with `directory.toml` listing the same
    /// users as the test DC (editable between cycles).
    pub static_directory: bool,
    /// The service talks to the UCServer's native port (tcp://, 7222)
    /// instead of its web service.
    pub native_ucserver: bool,
}

impl Default for LabOptions {
    fn default() -> LabOptions {
        LabOptions {
            users: USERS,
            replication: String::new(),
            static_directory: false,
            native_ucserver: false,
        }
    }
}

/// A directory user as a row of the static list.
#[derive(Clone, Debug)]
pub struct Person {
    pub object_guid: String,
    pub dn: String,
    pub sam: String,
    pub smtp: String,
}

/// The three servers, a configuration file and a state path.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub state: PathBuf,
    pub ucserver: UcServerSim,
    pub exchange: ExchangeSim,
    /// UCServer users without the administrator.
    pub users: Vec<SimUser>,
    /// Every UCServer user (to start another UCServer with the same data).
    pub all_users: Vec<SimUser>,
    pub people: Vec<Person>,
}

impl Lab {
    pub async fn start() -> Lab {
        Lab::start_with(LabOptions::default()).await
    }

    pub async fn start_with(options: LabOptions) -> Lab {
        let dc = test_dc();
        let base = format!("OU=Generated,OU=Replicator Test,{}", dc["BASE_DN"]);
        let mut settings = DirectorySettings::new(
            dc["LDAP_URL"].clone(),
            dc["BIND_USER"].clone(),
            Secret::new(dc["BIND_PASSWORD"].clone()),
        );
        settings.base_dn = Some(base.clone());
        let directory = AdDirectory::connect(settings)
            .await
            .expect("bind at the test DC");
        let mut found: Vec<DirectoryUser> = directory.users().await.expect("read users");
        found.sort_by(|a, b| a.sam_account_name.cmp(&b.sam_account_name));
        found.truncate(options.users);
        assert_eq!(
            found.len(),
            options.users,
            "the test DC has generated users"
        );

        let now = Utc::now();
        let mut users = vec![SimUser {
            user_name: "ucadmin".into(),
            display_name: "UC Admin".into(),
            dn: "CN=ucadmin,OU=Service,DC=example,DC=org".into(),
            object_guid: "{00000000-0000-4000-8000-0000000000AD}".into(),
            sam_account_name: "ucadmin".into(),
            sip_uri: "sip:ucadmin@example.org".into(),
            email: String::new(),
            online: true,
            admin: true,
            password: Some(UC_PASSWORD.into()),
            enabled: true,
        }];
        let mut mailboxes = Vec::new();
        let mut people = Vec::new();
        for (n, person) in found.iter().enumerate() {
            let smtp = person
                .primary_smtp
                .clone()
                .expect("generated users have mail");
            let sam = person.sam_account_name.clone().unwrap();
            people.push(Person {
                object_guid: person.object_guid.to_string(),
                dn: person.dn.clone(),
                sam: sam.clone(),
                smtp: smtp.clone(),
            });
            users.push(SimUser {
                user_name: sam.clone(),
                display_name: sam.clone(),
                dn: person.dn.clone(),
                object_guid: person.object_guid.to_string(),
                sam_account_name: sam,
                sip_uri: format!("sip:{smtp}"),
                email: smtp.clone(),
                // Every third user is logged on: not replicated.
                online: n % 3 == 2,
                admin: false,
                password: None,
                enabled: true,
            });
            mailboxes.push(SimMailbox {
                smtp,
                display_name: format!("User {n}"),
                permission: Permission::DetailsAndPrivate,
                events: events(now, n),
            });
        }
        let ucserver = UcServerSim::start(
            UcServerSimConfig::new(UserDatabase {
                users: users.clone(),
            }),
            None,
        )
        .await
        .unwrap();
        let uc_url = if options.native_ucserver {
            ucserver
                .listen_native(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), None)
                .await
                .unwrap();
            ucserver.native_url().unwrap()
        } else {
            ucserver.base_url()
        };
        let mut exchange_config = ExchangeSimConfig::new(mailboxes);
        exchange_config.accounts = vec![SimAccount::new("CORP", "svc-ews", EWS_PASSWORD)];
        exchange_config.extended_protection = true;
        let exchange = ExchangeSim::start(exchange_config).await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        exchange.write_ca_pem(&path("exchange-ca.pem")).unwrap();
        write_private(&path("uc.password"), format!("{UC_PASSWORD}\n"));
        write_private(&path("ldap.password"), &dc["BIND_PASSWORD"]);
        write_private(&path("ews.password"), EWS_PASSWORD);
        let directory_section = if options.static_directory {
            "kind = \"static\"\nfile = \"directory.toml\"\n".to_owned()
        } else {
            format!(
                "url = \"{ldap}\"\nbind_user = \"{bind}\"\npassword_file = \"ldap.password\"\nbase_dn = \"{base}\"\n",
                ldap = dc["LDAP_URL"],
                bind = dc["BIND_USER"],
            )
        };
        let state = path("state/state.sqlite");
        let config = path("config.toml");
        write_private(
            &config,
            format!(
                r#"[ucserver]
url = "{uc}"
allow_plain_http = true
username = "ucadmin"
password_file = "uc.password"

[directory]
{directory_section}
[exchange]
url = "{ews}"
username = 'CORP\svc-ews'
password_file = "ews.password"
ca_file = "exchange-ca.pem"

[replication]
{extra_replication}

[logging]
level = "debug"
directory = "logs"

[state]
path = "{state}"
"#,
                uc = uc_url,
                ews = exchange.ews_url(),
                state = state.display(),
                extra_replication = options.replication,
            ),
        );
        let lab = Lab {
            dir,
            config,
            state,
            ucserver,
            exchange,
            users: users.iter().filter(|u| !u.admin).cloned().collect(),
            all_users: users,
            people,
        };
        if options.static_directory {
            lab.write_static_directory(&lab.people);
        }
        lab
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `directory.toml` with `people`.
    pub fn write_static_directory(&self, people: &[Person]) {
        let mut text = String::new();
        for p in people {
            text.push_str(&format!(
                "[[user]]\nobject_guid = \"{}\"\ndn = '{}'\nsam_account_name = \"{}\"\nsmtp = \"{}\"\n\n",
                p.object_guid, p.dn, p.sam, p.smtp
            ));
        }
        std::fs::write(self.path("directory.toml"), text).unwrap();
    }

    /// Rewrites the configuration file.
    pub fn edit_config(&self, change: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        std::fs::write(&self.config, change(text)).unwrap();
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with_clock(args, None).await
    }

    /// As [`run`](Self::run), with the wall clock `clock` shows when given.
    pub async fn run_with_clock(&self, args: &[&str], clock: Option<&SteppedClock>) -> Output {
        run_binary(&self.config, args, Duration::from_secs(120), |command| {
            if let Some(clock) = clock {
                clock.apply(command);
            }
        })
        .await
    }

    /// Starts `run` (the service) in the background.
    pub fn spawn_service(&self) -> tokio::process::Child {
        self.spawn_service_with_clock(None)
    }

    /// As [`spawn_service`](Self::spawn_service), with the wall clock
    /// `clock` shows when given.
    pub fn spawn_service_with_clock(&self, clock: Option<&SteppedClock>) -> tokio::process::Child {
        self.spawn_service_with(|command| {
            if let Some(clock) = clock {
                clock.apply(command);
            }
        })
    }

    /// As [`spawn_service`](Self::spawn_service), the command changed by
    /// `configure` (environment, stderr) before it starts.
    pub fn spawn_service_with(
        &self,
        configure: impl FnOnce(&mut tokio::process::Command),
    ) -> tokio::process::Child {
        let mut command = tokio::process::Command::new(BIN);
        command
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        configure(&mut command);
        command.spawn().unwrap()
    }

    /// The current log file's text ("" before it exists).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("logs/ews-calendar-replicator.log")).unwrap_or_default()
    }

    pub fn offline(&self) -> Vec<&SimUser> {
        self.users.iter().filter(|u| !u.online).collect()
    }

    /// Each user's stored list and number of accepted writes.
    pub fn ucserver_view(&self) -> UcView {
        UcView(
            self.users
                .iter()
                .map(|u| {
                    (
                        u.user_name.clone(),
                        self.ucserver.appointments(&u.user_name),
                        self.ucserver.write_count(&u.user_name),
                    )
                })
                .collect(),
        )
    }

    /// `status --json`, which must succeed.
    pub async fn status(&self) -> Value {
        let output = self.run(&["status", "--json"]).await;
        assert!(output.status.success(), "{}", text(&output));
        json(&output)
    }

    /// A first healthy cycle: every offline user written once.
    pub async fn first_cycle(&self) -> UcView {
        let output = self.run(&["once"]).await;
        assert!(output.status.success(), "{}", text(&output));
        for user in self.offline() {
            assert_eq!(
                self.ucserver.write_count(&user.user_name),
                1,
                "{}",
                text(&output)
            );
        }
        assert_eq!(self.ucserver.total_writes(), self.offline().len());
        self.ucserver_view()
    }

    /// Changes the first offline user's calendar (one event fewer), so that
    /// a healthy cycle has exactly one list to write.
    pub fn change_first_calendar(&self) -> String {
        let user = self.offline()[0];
        self.exchange
            .mailbox_mut(&user.email, |m| m.events.remove(0))
            .unwrap();
        user.user_name.clone()
    }

    /// The next healthy `once` writes exactly `changed` (one more write
    /// each), leaves everyone else alone, exits 0, and `status` then shows
    /// no failing user.
    pub async fn assert_converges(&self, before: &UcView, changed: &[&str]) {
        let output = self.run(&["once"]).await;
        assert!(output.status.success(), "{}", text(&output));
        let after = self.ucserver_view();
        for ((name, _, writes_before), (_, list, writes_after)) in before.0.iter().zip(&after.0) {
            let expected = writes_before + usize::from(changed.contains(&name.as_str()));
            assert_eq!(
                *writes_after,
                expected,
                "{name}: writes after the healthy cycle\n{}",
                text(&output)
            );
            if changed.contains(&name.as_str()) {
                let stored = list.as_ref().expect("written");
                let user = self.users.iter().find(|u| &u.user_name == name).unwrap();
                let events = self.exchange.mailbox(&user.email).unwrap().events;
                let shown = events.iter().filter(|e| !e.private).count();
                assert_eq!(stored.len(), shown, "{name}: the current calendar");
            }
        }
        let status = self.status().await;
        assert_eq!(
            status["cycles"][0]["written"],
            changed.len(),
            "newest cycle: {status:#}"
        );
        // Converged: after a healthy cycle no user is failing any more,
        // whether it was written or read unchanged.
        assert_eq!(
            status["users_failing"].as_array().unwrap().len(),
            0,
            "{status:#}"
        );
    }
}

/// Runs the binary with `args` and `--config config`, no input, the command
/// changed by `configure` (environment) first; its output once it exits,
/// which must be within `timeout`.
pub async fn run_binary(
    config: &Path,
    args: &[&str],
    timeout: Duration,
    configure: impl FnOnce(&mut tokio::process::Command),
) -> Output {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null());
    configure(&mut command);
    tokio::time::timeout(timeout, command.output())
        .await
        .expect("the command finishes")
        .expect("the binary runs")
}

/// (user, stored list, accepted writes) for every non-admin user.
#[derive(Debug, Clone, PartialEq)]
pub struct UcView(pub Vec<(String, Option<Vec<AsnAppointmentEntry>>, usize)>);

/// An output as text for assertion messages: exit status, stdout, stderr.
pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Stdout as JSON (panics with the whole output when it is not).
pub fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(output)))
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Sends `signal` (`TERM`, `KILL`) to `pid` through the `kill` command.
pub fn send_signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Waits (polling) until `condition` holds; panics with `what` after 60 s.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// A service manager's notification socket (`$NOTIFY_SOCKET`), as systemd
/// listens on it for a `Type=notify` service.
pub struct NotifyListener {
    pub path: PathBuf,
    socket: tokio::net::UnixDatagram,
    /// Every datagram received so far.
    pub received: Vec<String>,
}

impl NotifyListener {
    pub fn bind(lab: &Lab) -> NotifyListener {
        let path = lab.path("notify.sock");
        let socket = tokio::net::UnixDatagram::bind(&path).unwrap();
        NotifyListener {
            path,
            socket,
            received: Vec::new(),
        }
    }

    /// Receives until a datagram satisfies `wanted` and returns it; panics
    /// with `what` and what arrived after 60 s (a hang guard, not a
    /// measurement).
    pub async fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        if let Some(found) = self.received.iter().find(|d| wanted(d)) {
            return found.clone();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut buf = vec![0u8; 4096];
        loop {
            let n = tokio::time::timeout_at(deadline, self.socket.recv(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!("no {what} from the service; received: {:?}", self.received)
                })
                .unwrap();
            let datagram = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.received.push(datagram.clone());
            if wanted(&datagram) {
                return datagram;
            }
        }
    }
}

/// libfaketime from Debian's `libfaketime` package (installed with `faketime`).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// A wall clock the test can step while the binary runs, as NTP, a VM
/// resume or `date -s` step the real one: the binary is started with
/// libfaketime preloaded, reading its offset from a file on every clock
/// read (`FAKETIME_NO_CACHE`), and only `CLOCK_REALTIME` is faked
/// (`FAKETIME_DONT_FAKE_MONOTONIC`): the monotonic clock runs on as on a
/// real machine.
///
/// When the tests themselves run under an offset clock (`FAKETIME=+Ns`, as
/// `scripts/soak-tests.sh` runs them), the binary gets that offset plus the
/// step, so that it agrees with the test until the step.
pub struct SteppedClock {
    file: PathBuf,
    /// The offset the tests run under, in seconds (0 on the real clock).
    base_seconds: i64,
}

/// The offset of an inherited `FAKETIME=+Ns` / `-Ns` in seconds; 0 when
/// the tests run on the real clock.
fn inherited_offset_seconds() -> i64 {
    let Ok(spec) = std::env::var("FAKETIME") else {
        return 0;
    };
    spec.strip_suffix('s')
        .and_then(|n| n.strip_prefix('+').unwrap_or(n).parse().ok())
        .unwrap_or_else(|| {
            panic!("FAKETIME={spec:?}: the clock-jump rows compose only with an offset in seconds (+Ns or -Ns)")
        })
}

impl SteppedClock {
    /// A clock showing the tests' own time (no step), its file in `lab`.
    pub fn new(lab: &Lab) -> SteppedClock {
        assert!(
            std::path::Path::new(LIBFAKETIME).exists(),
            "the clock-jump rows need libfaketime at {LIBFAKETIME} (apt-get install faketime)"
        );
        let clock = SteppedClock {
            file: lab.path("faketime.rc"),
            base_seconds: inherited_offset_seconds(),
        };
        clock.step(ChronoDuration::zero());
        clock
    }

    /// Sets the step from the tests' own time. Written to a temporary file
    /// and renamed, so the binary never reads a half-written offset.
    pub fn step(&self, step: ChronoDuration) {
        let offset = self.base_seconds + step.num_seconds();
        let next = self.file.with_extension("next");
        std::fs::write(&next, format!("{offset:+}s\n")).unwrap();
        std::fs::rename(&next, &self.file).unwrap();
    }

    pub fn apply(&self, command: &mut tokio::process::Command) {
        command
            // An inherited FAKETIME would win over the file.
            .env_remove("FAKETIME")
            .env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME_TIMESTAMP_FILE", &self.file)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }
}

/// Writes a password or configuration file as an administrator would:
/// readable by its owner only (`run` refuses a password file every user can
/// read).
pub fn write_private(path: &Path, text: impl AsRef<[u8]>) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_ref()))
        .unwrap();
}
