//! Issue #15, secrets: the binary marks itself non-dumpable before it reads
//! any password, `run` refuses a password file every user can read, and the
//! UCServer administrator password is kept like the others.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};

use crate::support::lab::BIN;

/// The `Uid:` line's real uid of a process.
fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
        .expect("Uid line")
}

/// A non-dumpable process's /proc files belong to root, whoever runs it
/// (proc(5), PR_SET_DUMPABLE): so the binary runs as a user other than root
/// (as nobody when the test runs as root) and its /proc/PID/environ must be
/// root's. Without the prctl it is the user's own.
#[test]
fn the_binary_is_not_dumpable_once_it_has_started() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("config.toml");
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    let mut command = if is_root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        Command::new(BIN)
    };
    // `config init` asks its first question and waits: the process is
    // running, past start-up, when the question is printed.
    let mut child = command
        .args(["config", "init", "--config"])
        .arg(&target)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the binary (setpriv from util-linux when running as root)");
    let mut first = [0u8; 1];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .expect("config init prints its first question");
    let pid = child.id();
    let uid = uid_of(pid);
    let environ_owner = std::fs::metadata(format!("/proc/{pid}/environ"))
        .unwrap()
        .uid();
    let _ = child.kill();
    let _ = child.wait();
    assert_ne!(uid, 0, "the binary must run as a user other than root here");
    assert_eq!(
        environ_owner, 0,
        "/proc/{pid}/environ belongs to uid {environ_owner}, the process's own user: it is dumpable"
    );
}

const CONFIG: &str = r#"
[ucserver]
url = "https://uc.example.com:7225"
username = "Administrator"
password_file = "uc.pw"

[directory]
kind = "static"
file = "users.toml"

[exchange]
url = "https://mail.example.com/EWS/Exchange.asmx"
username = 'CORP\svc'
password_file = "ews.pw"

[state]
path = "state.sqlite"
"#;

#[test]
fn run_refuses_a_world_readable_password_file_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, CONFIG).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(dir.path().join("users.toml"), "").unwrap();
    for (name, mode) in [("uc.pw", 0o600), ("ews.pw", 0o644)] {
        std::fs::write(dir.path().join(name), "pw\n").unwrap();
        std::fs::set_permissions(dir.path().join(name), std::fs::Permissions::from_mode(mode))
            .unwrap();
    }
    let output = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("refusing to run"), "{stderr}");
    assert!(stderr.contains("exchange.password_file"), "{stderr}");
    assert!(stderr.contains("allow_readable_secrets"), "{stderr}");
    assert!(!stderr.contains("uc.pw"), "{stderr}");
}

/// The UCServer client keeps the administrator password for as long as it
/// runs (it logs on again after every reconnect): in a `Secret`, zeroed when
/// dropped, as the LDAP and EWS passwords. It was a plain `String`.
#[test]
fn the_ucserver_password_is_kept_in_a_secret() {
    use ews_calendar_replicator::ucserver::UcServerSettings;
    use ews_toolkit::secret::Secret;

    let settings = UcServerSettings::new(
        "https://uc.example.com:7225".parse().unwrap(),
        "Administrator",
        "uc-admin-secret-1",
    );
    let password: &Secret = &settings.admin_password;
    assert_eq!(password.expose(), "uc-admin-secret-1");
    assert!(!format!("{settings:?}").contains("uc-admin-secret-1"));
}
