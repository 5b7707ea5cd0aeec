//! systemd service notifications (`sd_notify`): `READY=1` once the service
//! runs and schedules, `STATUS=…` for `systemctl status`, `WATCHDOG=1`
//! pings, `STOPPING=1` on shutdown. Sent as datagrams to
//! `$NOTIFY_SOCKET`; outside systemd (no variable) nothing is sent.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::Duration;

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifySocket {
    /// A socket file.
    Path(PathBuf),
    /// A Linux abstract socket (`@name` in `$NOTIFY_SOCKET`).
    Abstract(Vec<u8>),
}

/// Sends notifications to the service manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifier {
    socket: Option<NotifySocket>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; without it (not started by systemd with
    /// `Type=notify`), every notification is a no-op.
    pub fn from_env() -> Notifier {
        Notifier::from_value(std::env::var_os("NOTIFY_SOCKET").map(|v| v.into_encoded_bytes()))
    }

    /// From the value `$NOTIFY_SOCKET` would have.
    pub fn from_value(value: Option<Vec<u8>>) -> Notifier {
        let socket = value.filter(|v| !v.is_empty()).map(|v| {
            if let Some(name) = v.strip_prefix(b"@") {
                NotifySocket::Abstract(name.to_vec())
            } else {
                use std::os::unix::ffi::OsStringExt as _;
                NotifySocket::Path(PathBuf::from(std::ffi::OsString::from_vec(v)))
            }
        });
        Notifier { socket }
    }

    pub fn to(socket: NotifySocket) -> Notifier {
        Notifier {
            socket: Some(socket),
        }
    }

    /// Whether a service manager listens.
    pub fn is_enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends `state` (newline-separated `KEY=value` lines). `Ok(false)`:
    /// no socket configured, nothing sent.
    pub fn notify(&self, state: &str) -> io::Result<bool> {
        let Some(socket) = &self.socket else {
            return Ok(false);
        };
        let address = match socket {
            NotifySocket::Path(path) => SocketAddr::from_pathname(path)?,
            NotifySocket::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt as _;
                SocketAddr::from_abstract_name(name)?
            }
        };
        let datagram = UnixDatagram::unbound()?;
        datagram.send_to_addr(state.as_bytes(), &address)?;
        Ok(true)
    }

    /// The service is up: the configuration loaded, the state database
    /// opened and the scheduler running (whether or not the servers answer).
    pub fn ready(&self) -> io::Result<bool> {
        self.notify("READY=1")
    }

    /// Keeps the watchdog (`WatchdogSec=`) from restarting the service.
    pub fn watchdog(&self) -> io::Result<bool> {
        self.notify("WATCHDOG=1")
    }

    /// The service is shutting down.
    pub fn stopping(&self) -> io::Result<bool> {
        self.notify("STOPPING=1")
    }

    /// A one-line status shown by `systemctl status`; line breaks become
    /// spaces so the text stays one assignment.
    pub fn status(&self, text: &str) -> io::Result<bool> {
        let line: String = text
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        self.notify(&format!("STATUS={line}"))
    }
}

/// The watchdog systemd set for this process (`WatchdogSec=`), read as
/// `sd_watchdog_enabled(3)` reads it: `$WATCHDOG_USEC` microseconds, for
/// this process only when `$WATCHDOG_PID` is unset or names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watchdog {
    timeout: Duration,
}

impl Watchdog {
    /// From the environment; `None` when no watchdog is set for this process.
    pub fn from_env() -> Option<Watchdog> {
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Watchdog::from_values(usec.as_deref(), pid.as_deref(), std::process::id())
    }

    /// From the values of `$WATCHDOG_USEC` and `$WATCHDOG_PID` for process `own_pid`.
    pub fn from_values(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Watchdog> {
        if let Some(pid) = pid {
            if pid.trim().parse::<u32>().ok() != Some(own_pid) {
                return None;
            }
        }
        let usec: u64 = usec?.trim().parse().ok()?;
        (usec > 0).then(|| Watchdog {
            timeout: Duration::from_micros(usec),
        })
    }

    /// After this long without a ping systemd restarts the service.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How often to ping: half the timeout, as `sd_watchdog_enabled(3)`
    /// recommends.
    pub fn ping_every(&self) -> Duration {
        self.timeout / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn notifications_arrive_as_datagrams_on_the_socket_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let manager = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::from_value(Some(path.as_os_str().as_encoded_bytes().to_vec()));
        assert!(notifier.is_enabled());
        assert!(notifier.ready().unwrap());
        assert!(notifier.status("cycle 3: 12 written,\n2 failed").unwrap());
        assert!(notifier.stopping().unwrap());
        assert_eq!(receive(&manager), "READY=1");
        assert_eq!(receive(&manager), "STATUS=cycle 3: 12 written, 2 failed");
        assert_eq!(receive(&manager), "STOPPING=1");
    }

    #[test]
    fn an_abstract_socket_name_is_used_as_such() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("ews-calendar-replicator-test-{}", std::process::id());
        let manager =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let notifier = Notifier::from_value(Some(format!("@{name}").into_bytes()));
        assert!(notifier.ready().unwrap());
        assert_eq!(receive(&manager), "READY=1");
    }

    #[test]
    fn without_a_socket_nothing_is_sent() {
        let notifier = Notifier::from_value(None);
        assert!(!notifier.is_enabled());
        assert!(!notifier.ready().unwrap());
    }

    #[test]
    fn the_unit_file_matches_the_programs_paths_and_notifies() {
        let unit = include_str!("../packaging/ews-calendar-replicator.service");
        let lines: Vec<&str> = unit.lines().collect();
        assert!(lines.contains(&"Type=notify"));
        let exec = lines
            .iter()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .expect("ExecStart");
        assert!(
            exec.ends_with(&format!(
                " run --config {}",
                crate::config::SYSTEM_CONFIG_PATH
            )),
            "{exec}"
        );
        // $STATE_DIRECTORY is then the directory the root default also uses.
        let state = lines
            .iter()
            .find_map(|l| l.strip_prefix("StateDirectory="))
            .expect("StateDirectory");
        assert_eq!(
            Path::new("/var/lib").join(state),
            Path::new(crate::config::ROOT_STATE_DIRECTORY)
        );
        assert!(lines.iter().any(|l| l.starts_with("LogsDirectory=")));
        assert!(lines.iter().any(|l| l.starts_with("User=")));
    }

    /// Issue #16: a start that cannot hang for ever, a watchdog, a reload.
    #[test]
    fn the_unit_bounds_the_start_sets_a_watchdog_and_reloads_with_sighup() {
        let unit = include_str!("../packaging/ews-calendar-replicator.service");
        let seconds = |key: &str| {
            unit.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{key} in seconds"))
        };
        // READY=1 needs only the configuration and the state database.
        assert!((10..=120).contains(&seconds("TimeoutStartSec=")));
        // Pinged every half of it from the scheduler loop.
        assert!((30..=600).contains(&seconds("WatchdogSec=")));
        assert!(unit.lines().any(|l| l == "ExecReload=kill -HUP $MAINPID"));
        assert!(unit.lines().any(|l| l == "Restart=on-failure"));
    }

    /// Issue #15: no core files, memory capped, passwords as credentials
    /// under the names the example configuration reads. Issue #16: each
    /// credential's source is a name in systemd's credential store, which
    /// systemd skips when absent, not a path, which fails the start.
    #[test]
    fn the_unit_keeps_passwords_out_of_cores_and_the_environment_and_caps_memory() {
        let unit = include_str!("../packaging/ews-calendar-replicator.service");
        let lines: Vec<&str> = unit.lines().collect();
        assert!(lines.contains(&"LimitCORE=0"));
        let megabytes = |key: &str| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.strip_suffix('M'))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{key} in MB"))
        };
        let (high, max) = (megabytes("MemoryHigh="), megabytes("MemoryMax="));
        // Above the 20,000-mailbox peak (89 MB, README Performance) with room.
        assert!(
            200 <= high && high < max,
            "MemoryHigh={high}M MemoryMax={max}M"
        );
        assert!(!lines.iter().any(|l| l.starts_with("Environment")));
        let example = include_str!("../config.example.toml");
        for name in ["ldap.password", "exchange.password"] {
            let source = lines
                .iter()
                .find_map(|l| l.strip_prefix(&format!("LoadCredential={name}:")))
                .unwrap_or_else(|| panic!("LoadCredential={name}"));
            assert_eq!(source, format!("ews-calendar-replicator.{name}"));
            assert!(
                example.contains(&format!(
                    "password_file = \"${{CREDENTIALS_DIRECTORY}}/{name}\""
                )),
                "config.example.toml reads {name}"
            );
        }
    }

    #[test]
    fn the_watchdog_is_read_for_this_process_only_and_pinged_at_half_its_timeout() {
        let own = 4242;
        let watchdog = Watchdog::from_values(Some("120000000"), None, own).unwrap();
        assert_eq!(watchdog.timeout(), Duration::from_secs(120));
        assert_eq!(watchdog.ping_every(), Duration::from_secs(60));
        assert_eq!(
            Watchdog::from_values(Some("120000000"), Some("4242"), own),
            Some(watchdog)
        );
        // Meant for another process (e.g. inherited by a child).
        assert_eq!(
            Watchdog::from_values(Some("120000000"), Some("1"), own),
            None
        );
        assert_eq!(Watchdog::from_values(None, None, own), None);
        assert_eq!(Watchdog::from_values(Some("0"), None, own), None);
        assert_eq!(Watchdog::from_values(Some("soon"), None, own), None);
    }

    #[test]
    fn watchdog_pings_arrive_on_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let manager = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::to(NotifySocket::Path(path));
        assert!(notifier.watchdog().unwrap());
        assert_eq!(receive(&manager), "WATCHDOG=1");
    }

    #[test]
    fn a_socket_nobody_listens_on_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let notifier = Notifier::to(NotifySocket::Path(dir.path().join("gone.sock")));
        assert!(notifier.ready().is_err());
    }
}
