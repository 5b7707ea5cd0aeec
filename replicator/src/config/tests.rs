use std::collections::BTreeSet;
use std::io::Cursor;

use super::init::{init, InitError, Prompter};
use super::*;

const EXAMPLE: &str = include_str!("../../config.example.toml");

const MINIMAL: &str = r#"
[ucserver]
url = "https://uc.example.com:7225"
username = "Administrator"
password = "uc-secret-1"

[directory]
url = "ldaps://dc1.corp.example.com"
bind_user = "svc@corp.example.com"
password = "ldap-secret-2"

[exchange]
username = 'CORP\svc'
password = "ews-secret-3"
"#;

fn context() -> LoadContext {
    LoadContext::with_vars([("HOME", "/home/tester")])
}

fn parse_text(text: &str) -> Result<Config, ConfigError> {
    parse(text, Path::new("/etc/replicator/config.toml"), &context())
}

fn error_of(text: &str) -> ConfigError {
    parse_text(text).expect_err("the configuration should be refused")
}

/// `MINIMAL` with `line` appended to `[section]` (TOML allows a section's
/// keys anywhere after its header, so the section is reopened at the end
/// only when it is not one of MINIMAL's).
fn with_key(section: &str, line: &str) -> String {
    let header = format!("[{section}]\n");
    if MINIMAL.contains(&header) {
        MINIMAL.replace(&header, &format!("{header}{line}\n"))
    } else {
        format!("{MINIMAL}\n{header}{line}\n")
    }
}

#[test]
fn the_example_file_is_rendered_from_the_key_documentation() {
    let rendered = document::render_example();
    if std::env::var_os("UPDATE_CONFIG_EXAMPLE").is_some() {
        fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"),
            &rendered,
        )
        .unwrap();
        return;
    }
    assert!(
        EXAMPLE == rendered,
        "config.example.toml differs from src/config/document.rs; regenerate it with \
         UPDATE_CONFIG_EXAMPLE=1 cargo test --lib config::tests::the_example_file"
    );
}

#[test]
fn the_example_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    fs::write(&file, EXAMPLE).unwrap();
    fs::write(dir.path().join("exchange.password"), "ews-pass\n").unwrap();
    fs::write(dir.path().join("ldap.password"), "ldap-pass\n").unwrap();
    for name in ["exchange.password", "ldap.password"] {
        fs::set_permissions(dir.path().join(name), fs::Permissions::from_mode(0o600)).unwrap();
    }
    let credentials = dir.path().to_str().unwrap().to_owned();
    let context = LoadContext::with_vars([
        ("CREDENTIALS_DIRECTORY", credentials.as_str()),
        ("HOME", "/home/t"),
    ]);
    let config = load_with(&file, &context).unwrap();
    assert_eq!(
        config.ucserver.base_url.as_str(),
        "https://ucserver.example.com:7225/"
    );
    assert_eq!(config.ucserver.admin_password.expose(), "change-me");
    let DirectoryConfig::ActiveDirectory(directory) = &config.directory else {
        panic!("expected Active Directory: {:?}", config.directory);
    };
    assert_eq!(directory.bind_password.expose(), "ldap-pass");
    assert!(directory.starttls);
    assert_eq!(config.exchange.version, ExchangeVersion::Exchange2013Sp1);
    assert_eq!(
        config.exchange.credentials.username(),
        "CORP\\svc-replicator"
    );
    assert_eq!(config.exchange.credentials.password().expose(), "ews-pass");
    assert_eq!(
        config.exchange.url.as_ref().map(Url::as_str),
        Some("https://mail.corp.example.com/EWS/Exchange.asmx")
    );
    assert_eq!(config.replication, ReplicationSettings::default());
    assert_eq!(config.logging, LoggingSettings::default());
    assert_eq!(
        config.state_path,
        Path::new("/home/t/.local/share/ews-calendar-replicator/state.sqlite")
    );
}

/// The keys serde accepts in `section`, from its unknown-key error.
fn schema_keys(section: &str) -> BTreeSet<String> {
    let text = with_key(section, "zz_not_a_key = 1");
    let message = error_of(&text).message;
    let listed = message
        .split(", expected")
        .nth(1)
        .unwrap_or_else(|| panic!("no key list in {message:?}"));
    listed
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_key_of_the_schema_is_documented_in_the_example() {
    for section in document::SECTIONS {
        let documented: BTreeSet<String> = section.keys.iter().map(|k| k.name.to_owned()).collect();
        assert_eq!(schema_keys(section.name), documented, "[{}]", section.name);
    }
    let top_level = error_of(&format!("{MINIMAL}\n[zz_section]\n")).message;
    let sections: BTreeSet<&str> = document::SECTIONS.iter().map(|s| s.name).collect();
    for section in &sections {
        assert!(top_level.contains(&format!("`{section}`")), "{top_level}");
    }
    // Each key appears in its section of the example, set or commented out.
    let mut current = "";
    let mut seen = BTreeSet::new();
    for line in EXAMPLE.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name;
            continue;
        }
        let line = line.trim_start_matches("# ");
        if let Some((key, _)) = line.split_once(" = ") {
            seen.insert(format!("{current}.{key}"));
        }
    }
    for key in document::all_keys() {
        assert!(
            seen.contains(&key),
            "{key} is missing from config.example.toml"
        );
    }
}

#[test]
fn a_minimal_file_gets_the_documented_defaults() {
    let config = parse_text(MINIMAL).unwrap();
    assert_eq!(config.replication.interval, Duration::from_secs(15 * 60));
    assert!(config.replication.only_offline_users);
    assert_eq!(config.replication.window_days, 30);
    assert_eq!(
        config.replication.private_appointments,
        PrivateAppointments::Skip
    );
    assert_eq!(config.replication.busy_type_map, BusyTypeMap::default());
    assert_eq!(config.exchange.url, None);
    assert_eq!(config.exchange.version, ExchangeVersion::Exchange2013Sp1);
    assert_eq!(config.exchange.credentials.scheme(), AuthScheme::Ntlm);
    assert!(!config.exchange.impersonation);
    assert_eq!(config.exchange.max_concurrency, 4);
    assert_eq!(config.exchange.transport.max_connections_per_host, 4);
    assert!(!config.exchange.transport.allow_plain_http);
    assert_eq!(
        config.exchange.transport.request_timeout,
        std::time::Duration::from_secs(100)
    );
    assert_eq!(
        config.exchange.transport.max_response_bytes,
        64 * 1024 * 1024
    );
    assert_eq!(config.exchange.transport.max_connections_per_host, 4);
    assert_eq!(
        config.exchange.request_headers().version,
        ExchangeVersion::Exchange2013Sp1
    );
    assert_eq!(config.logging.level, LogLevel::Info);
    assert_eq!(config.logging.directory, None);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(
        config.state_path,
        Path::new("/home/tester/.local/share/ews-calendar-replicator/state.sqlite")
    );
}

#[test]
fn the_state_path_defaults_follow_systemd_root_and_xdg() {
    let file = Path::new("/etc/x/config.toml");
    let systemd = LoadContext::with_vars([
        ("STATE_DIRECTORY", "/var/lib/ecr:/var/lib/other"),
        ("HOME", "/root"),
    ])
    .as_root(true);
    assert_eq!(
        parse(MINIMAL, file, &systemd).unwrap().state_path,
        Path::new("/var/lib/ecr/state.sqlite")
    );
    let root = LoadContext::with_vars([("HOME", "/root")]).as_root(true);
    assert_eq!(
        parse(MINIMAL, file, &root).unwrap().state_path,
        Path::new("/var/lib/ews-calendar-replicator/state.sqlite")
    );
    let xdg = LoadContext::with_vars([("XDG_DATA_HOME", "/data"), ("HOME", "/home/u")]);
    assert_eq!(
        parse(MINIMAL, file, &xdg).unwrap().state_path,
        Path::new("/data/ews-calendar-replicator/state.sqlite")
    );
    let nothing = LoadContext::with_vars(Vec::<(String, String)>::new());
    let err = parse(MINIMAL, file, &nothing).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("state.path"));
    let logs = LoadContext::with_vars([("LOGS_DIRECTORY", "/var/log/ecr"), ("HOME", "/h")]);
    assert_eq!(
        parse(MINIMAL, file, &logs).unwrap().logging.directory,
        Some(PathBuf::from("/var/log/ecr"))
    );
}

#[test]
fn relative_paths_are_relative_to_the_configuration_file() {
    let text = with_key("state", "path = \"data/state.sqlite\"");
    let config = parse(&text, Path::new("/nonexistent-dir/config.toml"), &context()).unwrap();
    assert_eq!(
        config.state_path,
        Path::new("/nonexistent-dir/data/state.sqlite")
    );
}

#[test]
fn an_unknown_key_is_refused_with_file_line_key_and_the_valid_keys() {
    let text = MINIMAL.replace(
        "username = \"Administrator\"",
        "usrname = \"Administrator\"",
    );
    let err = error_of(&text);
    assert_eq!(err.file, Path::new("/etc/replicator/config.toml"));
    assert_eq!(err.line, Some(4));
    assert_eq!(err.key.as_deref(), Some("ucserver.usrname"));
    let shown = err.to_string();
    assert!(
        shown.starts_with("/etc/replicator/config.toml:4: ucserver.usrname: unknown key `usrname`"),
        "{shown}"
    );
    assert!(shown.contains("`username`"), "{shown}");
}

#[test]
fn a_missing_required_key_names_it_and_what_is_expected() {
    let err = error_of(&MINIMAL.replace("username = \"Administrator\"\n", ""));
    assert_eq!(err.key.as_deref(), Some("ucserver.username"));
    assert!(
        err.message
            .starts_with("missing; expected: A UCServer administrator account"),
        "{err}"
    );
    let err = error_of(&MINIMAL.replace("url = \"ldaps://dc1.corp.example.com\"\n", ""));
    assert_eq!(err.key.as_deref(), Some("directory.url"));
    assert!(err.message.contains("ldap://dc.example.com"), "{err}");
    let err = error_of("[ucserver]\nurl = \"https://uc\"\n");
    assert_eq!(err.line, Some(1), "{err}");
    assert_eq!(err.key.as_deref(), Some("ucserver.username"), "{err}");
    let err = error_of("[directory]\nkind = \"static\"\nfile = \"u.csv\"\n");
    assert_eq!(err.key.as_deref(), Some("ucserver"), "{err}");
    assert!(err.message.contains("missing section [ucserver]"), "{err}");
    let err = error_of(&MINIMAL.replace("[exchange]", "[exchange_]"));
    assert_eq!(err.key.as_deref(), Some("exchange_"));
}

#[test]
fn invalid_values_are_refused_with_the_key_line_and_expectation() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "exchange",
            "auth = \"spnego\"",
            "exchange.auth",
            "`ntlm`, `negotiate`, `kerberos`, `basic`",
        ),
        (
            "exchange",
            "version = \"Exchange2003\"",
            "exchange.version",
            "Exchange2013_SP1",
        ),
        (
            "exchange",
            "max_concurrency = 0",
            "exchange.max_concurrency",
            "1 to 64",
        ),
        (
            "exchange",
            "request_timeout_seconds = 0",
            "exchange.request_timeout_seconds",
            "1 to 600",
        ),
        (
            "exchange",
            "max_response_mb = 2048",
            "exchange.max_response_mb",
            "1 to 1024",
        ),
        (
            "exchange",
            "url = \"ftp://mail.example.com/EWS\"",
            "exchange.url",
            "https://mail.example.com/EWS/Exchange.asmx",
        ),
        (
            "replication",
            "interval_minutes = 0",
            "replication.interval_minutes",
            "1 to 1440",
        ),
        (
            "replication",
            "interval_minutes = \"15\"",
            "replication.interval_minutes",
            "invalid type: string",
        ),
        (
            "replication",
            "window_days = 400",
            "replication.window_days",
            "1 to 366",
        ),
        (
            "replication",
            "ucserver_writes_in_flight = 0",
            "replication.ucserver_writes_in_flight",
            "1 to 64",
        ),
        (
            "replication",
            "private_appointments = \"hide\"",
            "replication.private_appointments",
            "`times_only`",
        ),
        (
            "replication",
            "busy_type_map = { Busy = \"free\" }",
            "replication.busy_type_map",
            "always maps to its own",
        ),
        (
            "replication",
            "busy_type_map = { NoData = \"busy\" }",
            "replication.busy_type_map",
            "never written",
        ),
        (
            "replication",
            "busy_type_map = { WorkingElsewhere = \"away\" }",
            "replication.busy_type_map.WorkingElsewhere",
            "`out_of_office`",
        ),
        ("logging", "level = \"verbose\"", "logging.level", "`trace`"),
        (
            "monitoring",
            "listen = \"localhost:9464\"",
            "monitoring.listen",
            "127.0.0.1:9464",
        ),
        ("logging", "max_files = 0", "logging.max_files", "1 to 1000"),
        (
            "directory",
            "include_group = \"Calendar Users\"",
            "directory.include_group",
            "not a distinguished name",
        ),
        (
            "directory",
            "kind = \"novell\"",
            "directory.kind",
            "`static`",
        ),
        (
            "directory",
            "file = \"users.csv\"",
            "directory.file",
            "kind = \"static\" only",
        ),
        (
            "ucserver",
            "ca_file = \"/nonexistent/ca.pem\"",
            "ucserver.ca_file",
            "PEM file",
        ),
    ];
    for (section, line, key, expected) in cases {
        let text = with_key(section, line);
        let err = error_of(&text);
        assert_eq!(err.key.as_deref(), Some(*key), "{line}: {err}");
        assert!(
            err.message.contains(expected),
            "{line}: {err} should contain {expected:?}"
        );
        let line_number = text.lines().position(|l| l == *line).unwrap() + 1;
        assert_eq!(err.line, Some(line_number), "{line}: {err}");
    }
    let err = error_of(&MINIMAL.replace("ldaps://dc1", "http://dc1"));
    assert_eq!(err.key.as_deref(), Some("directory.url"));
    assert!(err.message.contains("ldaps://dc.example.com"), "{err}");
    let err = error_of(&MINIMAL.replace("svc@corp.example.com", "svc"));
    assert_eq!(err.key.as_deref(), Some("directory.bind_user"));
    let err = error_of(&MINIMAL.replace("https://uc.example.com:7225", "ws://uc"));
    assert_eq!(err.key.as_deref(), Some("ucserver.url"));
    assert!(err.message.contains("https://host:7225"), "{err}");
    let err = error_of(&MINIMAL.replace("\"uc-secret-1\"", "31415926"));
    assert_eq!(err.key.as_deref(), Some("ucserver.password"));
    assert!(!err.to_string().contains("31415926"), "{err}");
    let err = error_of("[ucserver\nurl = 1");
    assert_eq!(err.line, Some(1), "{err}");
    assert!(!err.message.contains('\n'), "{err}");
}

#[test]
fn the_ucserver_url_gets_the_ucserver_default_ports() {
    for (given, expected) in [
        ("https://uc.example.com", "https://uc.example.com:7225/"),
        ("http://uc.example.com", "http://uc.example.com:7224/"),
        (
            "https://uc.example.com:8443",
            "https://uc.example.com:8443/",
        ),
        ("https://uc.example.com:443", "https://uc.example.com/"),
        ("https://[::1]", "https://[::1]:7225/"),
        ("https://[::1]:9000/", "https://[::1]:9000/"),
    ] {
        let config = parse_text(&MINIMAL.replace(
            "url = \"https://uc.example.com:7225\"",
            &format!("url = \"{given}\"\nallow_plain_http = true"),
        ))
        .unwrap();
        assert_eq!(config.ucserver.base_url.as_str(), expected, "{given}");
    }
}

#[test]
fn an_http_ucserver_url_needs_allow_plain_http_which_names_the_risk() {
    let plain = MINIMAL.replace("https://uc.example.com:7225", "http://uc.example.com");
    let err = error_of(&plain);
    assert_eq!(err.key.as_deref(), Some("ucserver.url"), "{err}");
    for needed in [
        "in clear",
        "asnAdminLogin",
        "allow_plain_http = true",
        "https://",
    ] {
        assert!(err.message.contains(needed), "{needed:?} missing: {err}");
    }
    let err = error_of(&plain.replace(
        "url = \"http://uc.example.com\"",
        "url = \"http://uc.example.com\"\nallow_plain_http = false",
    ));
    assert_eq!(err.key.as_deref(), Some("ucserver.url"), "{err}");
    let config = parse_text(&plain.replace(
        "url = \"http://uc.example.com\"",
        "url = \"http://uc.example.com\"\nallow_plain_http = true",
    ))
    .unwrap();
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.key == "ucserver.url" && w.message.contains("in clear")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn ucsid_defaults_to_local_and_is_configurable() {
    let config = parse_text(MINIMAL).unwrap();
    assert_eq!(config.ucserver.ucsid.as_deref(), Some("local"));
    let config = parse_text(&with_key("ucserver", "ucsid = \"UCS-0815\"")).unwrap();
    assert_eq!(config.ucserver.ucsid.as_deref(), Some("UCS-0815"));
}

#[test]
fn exactly_one_password_source_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let write_and_load = |text: &str, context: &LoadContext| {
        fs::write(&file, text).unwrap();
        load_with(&file, context)
    };

    let none = MINIMAL.replace("password = \"uc-secret-1\"\n", "");
    let err = write_and_load(&none, &context()).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("ucserver"));
    assert!(
        err.message
            .contains("exactly one of ucserver.password, ucserver.password_file"),
        "{err}"
    );

    let two = MINIMAL.replace(
        "password = \"uc-secret-1\"",
        "password = \"a\"\npassword_env = \"UC_PW\"",
    );
    let err = write_and_load(&two, &context()).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("ucserver.password_env"));
    assert!(
        err.message
            .contains("ucserver.password and ucserver.password_env are both set"),
        "{err}"
    );
    assert!(!err.to_string().contains("uc-secret-1"));

    fs::write(dir.path().join("uc.pw"), "from file \n").unwrap();
    let from_file = MINIMAL.replace("password = \"uc-secret-1\"", "password_file = \"uc.pw\"");
    let config = write_and_load(&from_file, &context()).unwrap();
    assert_eq!(config.ucserver.admin_password.expose(), "from file ");

    fs::write(dir.path().join("uc.pw"), "crlf\r\n").unwrap();
    assert_eq!(
        write_and_load(&from_file, &context())
            .unwrap()
            .ucserver
            .admin_password
            .expose(),
        "crlf"
    );

    let missing_file = MINIMAL.replace("password = \"uc-secret-1\"", "password_file = \"nope.pw\"");
    let err = write_and_load(&missing_file, &context()).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("ucserver.password_file"));
    assert!(err.message.contains("nope.pw"), "{err}");

    let from_env = MINIMAL.replace("password = \"ews-secret-3\"", "password_env = \"EWS_PW\"");
    let err = write_and_load(&from_env, &context()).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("exchange.password_env"));
    assert!(err.message.contains("EWS_PW is not set"), "{err}");
    let with_var = LoadContext::with_vars([("EWS_PW", "env-secret"), ("HOME", "/h")]);
    let config = write_and_load(&from_env, &with_var).unwrap();
    assert_eq!(
        config.exchange.credentials.password().expose(),
        "env-secret"
    );
}

#[test]
fn a_readable_file_with_an_inline_password_gets_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    fs::write(&file, MINIMAL).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let config = load_with(&file, &context()).unwrap();
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.message.contains("chmod 600")),
        "{:?}",
        config.warnings
    );
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    assert!(load_with(&file, &context()).unwrap().warnings.is_empty());
}

/// Issue #15: the check used to match the text `password =` at a line's
/// start, so quoted keys, tabs and inline tables escaped it.
#[test]
fn any_spelling_of_an_inline_password_makes_a_readable_file_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let quoted = MINIMAL.replace(
        "password = \"uc-secret-1\"",
        "\"password\" = \"uc-secret-1\"",
    );
    let tab = MINIMAL.replace("password = \"uc-secret-1\"", "password\t= \"uc-secret-1\"");
    let inline_table = MINIMAL.replace(
        "[ucserver]\nurl = \"https://uc.example.com:7225\"\nusername = \"Administrator\"\npassword = \"uc-secret-1\"\n",
        "ucserver = { url = \"https://uc.example.com:7225\", username = \"Administrator\", password = \"uc-secret-1\" }\n",
    );
    assert_ne!(inline_table, MINIMAL);
    for (label, text) in [
        ("quoted key", quoted),
        ("tab", tab),
        ("inline table", inline_table),
    ] {
        // Only the UCServer password inline: the others from files.
        let text = text
            .replace(
                "password = \"ldap-secret-2\"",
                "password_file = \"ldap.pw\"",
            )
            .replace("password = \"ews-secret-3\"", "password_file = \"ews.pw\"");
        for name in ["ldap.pw", "ews.pw"] {
            fs::write(dir.path().join(name), "pw").unwrap();
            fs::set_permissions(dir.path().join(name), fs::Permissions::from_mode(0o600)).unwrap();
        }
        fs::write(&file, &text).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let config = load_with(&file, &context()).unwrap();
        assert!(
            config
                .warnings
                .iter()
                .any(|w| w.message.contains("chmod 600")),
            "{label}: {:?}",
            config.warnings
        );
    }
}

#[test]
fn a_world_readable_password_file_is_a_warning_and_a_readable_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    fs::write(dir.path().join("uc.pw"), "from-file").unwrap();
    fs::set_permissions(dir.path().join("uc.pw"), fs::Permissions::from_mode(0o644)).unwrap();
    // In a directory only its owner may enter, the file is private.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let text = MINIMAL.replace("password = \"uc-secret-1\"", "password_file = \"uc.pw\"");
    fs::write(&file, &text).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    assert!(load_with(&file, &context())
        .unwrap()
        .readable_secrets
        .is_empty());
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let text = MINIMAL.replace("password = \"uc-secret-1\"", "password_file = \"uc.pw\"");
    fs::write(&file, &text).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let config = load_with(&file, &context()).unwrap();
    assert_eq!(
        config.readable_secrets.len(),
        1,
        "{:?}",
        config.readable_secrets
    );
    let warning = &config.readable_secrets[0];
    assert_eq!(warning.key, "ucserver.password_file");
    assert!(
        warning
            .message
            .contains("readable by every user (mode 644)"),
        "{warning}"
    );
    assert!(
        warning.message.contains("allow_readable_secrets"),
        "{warning}"
    );
    assert!(config.warnings.contains(warning));
    assert!(!config.allow_readable_secrets);

    let allowed = format!("{text}\n[security]\nallow_readable_secrets = true\n");
    fs::write(&file, allowed).unwrap();
    assert!(load_with(&file, &context()).unwrap().allow_readable_secrets);

    fs::set_permissions(dir.path().join("uc.pw"), fs::Permissions::from_mode(0o640)).unwrap();
    assert!(load_with(&file, &context())
        .unwrap()
        .readable_secrets
        .is_empty());
}

#[test]
fn a_password_written_into_password_env_is_not_repeated() {
    for value in ["Hunter2-secret!", "hunter2secret", "S3cr3t pass"] {
        let text = MINIMAL.replace(
            "password = \"ews-secret-3\"",
            &format!("password_env = \"{value}\""),
        );
        let err = error_of(&text);
        assert_eq!(err.key.as_deref(), Some("exchange.password_env"));
        assert!(!err.to_string().contains(value), "{err}");
        assert!(
            err.message
                .contains("not the name of an environment variable"),
            "{err}"
        );
    }
}

#[test]
fn password_files_expand_the_credentials_directory() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    fs::create_dir(&credentials).unwrap();
    fs::write(credentials.join("ldap"), "from-credential\n").unwrap();
    fs::set_permissions(credentials.join("ldap"), fs::Permissions::from_mode(0o400)).unwrap();
    let text = MINIMAL.replace(
        "password = \"ldap-secret-2\"",
        "password_file = \"${CREDENTIALS_DIRECTORY}/ldap\"",
    );
    let file = dir.path().join("config.toml");
    fs::write(&file, &text).unwrap();
    let with_credentials = LoadContext::with_vars([
        ("CREDENTIALS_DIRECTORY", credentials.to_str().unwrap()),
        ("HOME", "/h"),
    ]);
    let config = load_with(&file, &with_credentials).unwrap();
    let DirectoryConfig::ActiveDirectory(directory) = &config.directory else {
        panic!("expected Active Directory");
    };
    assert_eq!(directory.bind_password.expose(), "from-credential");

    let err = load_with(&file, &context()).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("directory.password_file"));
    assert!(err.message.contains("${CREDENTIALS_DIRECTORY}"), "{err}");
    assert!(err.message.contains("LoadCredential="), "{err}");
}

#[test]
fn the_command_lines_spelling_times_dash_only_is_accepted_in_the_file() {
    let text = format!("{MINIMAL}\n[replication]\nprivate_appointments = \"times-only\"\n");
    let config = parse_text(&text).unwrap();
    assert_eq!(
        config.replication.private_appointments,
        PrivateAppointments::TimesOnly
    );
}

#[test]
fn a_missing_file_points_to_config_init() {
    let err = load_with(Path::new("/nonexistent/config.toml"), &context()).unwrap_err();
    assert!(
        err.to_string()
            .contains("config init /nonexistent/config.toml"),
        "{err}"
    );
}

#[test]
fn the_static_directory_takes_only_its_file() {
    let text = MINIMAL.replace(
        "url = \"ldaps://dc1.corp.example.com\"\nbind_user = \"svc@corp.example.com\"\npassword = \"ldap-secret-2\"",
        "kind = \"static\"\nfile = \"users.csv\"",
    );
    let config = parse_text(&text).unwrap();
    let DirectoryConfig::Static { file } = &config.directory else {
        panic!("{:?}", config.directory);
    };
    assert_eq!(file, Path::new("/etc/replicator/users.csv"));
    let err = error_of(&text.replace(
        "file = \"users.csv\"",
        "file = \"users.csv\"\nurl = \"ldap://dc\"",
    ));
    assert_eq!(err.key.as_deref(), Some("directory.url"));
    assert!(err.message.contains("kind = \"ad\" only"), "{err}");
    let err = error_of(&text.replace("file = \"users.csv\"\n", ""));
    assert_eq!(err.key.as_deref(), Some("directory.file"));
}

#[test]
fn the_busy_type_map_overrides_the_defaults_key_by_key() {
    let text = with_key(
        "replication",
        "busy_type_map = { unknown = \"busy\", Away = \"oof\" }",
    );
    let map = parse_text(&text).unwrap().replication.busy_type_map;
    assert_eq!(map.unknown, AppointmentStatus::Busy);
    assert_eq!(
        map.overrides.get("WorkingElsewhere"),
        Some(&AppointmentStatus::Free)
    );
    assert_eq!(
        map.overrides.get("Away"),
        Some(&AppointmentStatus::OutOfOffice)
    );
}

#[test]
fn debug_output_and_log_lines_never_show_a_password() {
    let config = parse_text(MINIMAL).unwrap();
    let debug = format!("{config:?}");
    for secret in ["uc-secret-1", "ldap-secret-2", "ews-secret-3"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(debug.contains("svc@corp.example.com"), "{debug}");

    let captured = crate::logging::CapturedOutput::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(?config, "configuration loaded");
    });
    let logged = captured.text();
    assert!(logged.contains("configuration loaded"), "{logged}");
    assert!(logged.contains("CORP"), "{logged}");
    for secret in ["uc-secret-1", "ldap-secret-2", "ews-secret-3"] {
        assert!(!logged.contains(secret), "{secret} in {logged}");
    }
}

#[test]
fn a_short_interval_with_many_users_warns_with_the_request_rate() {
    let every = |minutes: u64| ReplicationSettings {
        interval: Duration::from_secs(minutes * 60),
        ..ReplicationSettings::default()
    };
    let warning = load_warning(&every(2), 450).unwrap();
    // 5 batches of 100 per cycle, 30 cycles per hour.
    assert!(
        warning.contains("about 150 availability requests per hour"),
        "{warning}"
    );
    assert!(
        warning.contains("batched 100 mailboxes at a time"),
        "{warning}"
    );
    let long_window = ReplicationSettings {
        window_days: 60,
        ..every(2)
    };
    assert!(load_warning(&long_window, 450)
        .unwrap()
        .contains("about 300 availability requests per hour"));
    assert_eq!(load_warning(&every(2), 200), None);
    assert_eq!(load_warning(&every(5), 5000), None);
}

fn run_init(answers: &str, target: &Path, force: bool) -> (Result<PathBuf, InitError>, String) {
    let mut output = Vec::new();
    let result = {
        let mut prompter = Prompter::new(Cursor::new(answers.as_bytes().to_vec()), &mut output);
        init(&mut prompter, target, force, &context())
    };
    (result, String::from_utf8(output).unwrap())
}

const INIT_ANSWERS: &str = "\
web-service
ftp://wrong
https://uc.example.com:7225
Administrator
inline
 uc pass 
/nonexistent/ca.pem

ldap://dc1.corp.example.com
yes
svc@corp.example.com
env
LDAP_PW


https://mail.example.com/EWS/Exchange.asmx
CORP\\svc
file
exchange.pw
ntlm
Exchange2019
0
10
no
times_only
";

#[test]
fn config_init_writes_a_commented_file_that_loads() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("etc/config.toml");
    let (result, output) = run_init(
        &INIT_ANSWERS.replace("/nonexistent/ca.pem", ""),
        &target,
        false,
    );
    assert_eq!(result.unwrap(), target);
    assert!(
        output.contains("expected a URL like https://ucserver.example.com:7225"),
        "{output}"
    );
    assert!(
        output.contains("expected a whole number from 1 to 1440"),
        "{output}"
    );
    let text = fs::read_to_string(&target).unwrap();
    assert!(text.starts_with(document::HEADER), "{text}");
    for section in document::SECTIONS {
        assert!(text.contains(&format!("[{}]", section.name)));
        for key in section.keys {
            assert!(
                text.contains(key.doc.lines().next().unwrap()),
                "doc of {} missing",
                key.name
            );
        }
    }
    assert_eq!(
        fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o600
    );

    fs::write(dir.path().join("etc/exchange.pw"), "ews\n").unwrap();
    let context = LoadContext::with_vars([("LDAP_PW", "ldap"), ("HOME", "/h")]);
    let config = load_with(&target, &context).unwrap();
    assert_eq!(
        config.ucserver.base_url.as_str(),
        "https://uc.example.com:7225/"
    );
    assert_eq!(config.ucserver.admin_password.expose(), " uc pass ");
    let DirectoryConfig::ActiveDirectory(directory) = &config.directory else {
        panic!("{:?}", config.directory);
    };
    assert!(directory.starttls);
    assert_eq!(directory.bind_password.expose(), "ldap");
    assert_eq!(directory.base_dn, None);
    assert_eq!(config.exchange.credentials.username(), "CORP\\svc");
    assert_eq!(config.exchange.credentials.password().expose(), "ews");
    // Exchange 2019 is asked for with the 2016 schema.
    assert_eq!(
        config.exchange.version,
        ews_toolkit::ExchangeVersion::Exchange2016
    );
    assert_eq!(config.replication.interval, Duration::from_secs(600));
    assert!(!config.replication.only_offline_users);
    assert_eq!(
        config.replication.private_appointments,
        PrivateAppointments::TimesOnly
    );
}

#[test]
fn config_init_refuses_to_overwrite_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("config.toml");
    fs::write(&target, "keep me").unwrap();
    let (result, output) = run_init(INIT_ANSWERS, &target, false);
    assert!(matches!(result, Err(InitError::Exists(_))), "{result:?}");
    assert!(
        output.is_empty(),
        "asked questions before refusing: {output}"
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), "keep me");

    let answers = INIT_ANSWERS.replace("/nonexistent/ca.pem", "");
    let (result, _) = run_init(&answers, &target, true);
    result.unwrap();
    assert!(fs::read_to_string(&target).unwrap().contains("[ucserver]"));
}

#[test]
fn config_init_stops_without_writing_when_the_input_ends() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("config.toml");
    let (result, _) = run_init("https://uc.example.com\nAdministrator\n", &target, false);
    assert!(matches!(result, Err(InitError::InputEnded)), "{result:?}");
    assert!(!target.exists());
}

#[test]
fn config_init_reports_a_file_that_does_not_load_yet() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("config.toml");
    // The CA file does not exist: the file is written, the note says why it
    // does not load.
    let (result, output) = run_init(INIT_ANSWERS, &target, false);
    result.unwrap();
    assert!(
        output.contains("note: the file does not load yet"),
        "{output}"
    );
    assert!(output.contains("ucserver.ca_file"), "{output}");
}

#[test]
fn the_default_configuration_file_is_the_system_one_for_root_else_the_users() {
    let root = LoadContext::with_vars([("HOME", "/root")]).as_root(true);
    assert_eq!(default_config_path(&root), Path::new(SYSTEM_CONFIG_PATH));
    let xdg = LoadContext::with_vars([("XDG_CONFIG_HOME", "/cfg"), ("HOME", "/home/u")]);
    assert_eq!(
        default_config_path(&xdg),
        Path::new("/cfg/ews-calendar-replicator/config.toml")
    );
    let home = LoadContext::with_vars([("HOME", "/home/u")]);
    assert_eq!(
        default_config_path(&home),
        Path::new("/home/u/.config/ews-calendar-replicator/config.toml")
    );
}

#[test]
fn a_tcp_url_selects_the_native_port_and_defaults_to_7222() {
    let config = parse_text(&MINIMAL.replace(
        "https://uc.example.com:7225",
        "tcp+starttls://uc.example.com",
    ))
    .unwrap();
    assert_eq!(
        config.ucserver.base_url.as_str(),
        "tcp+starttls://uc.example.com:7222"
    );
    assert!(config.ucserver.uses_native_port());
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    let plain = parse_text(&MINIMAL.replace("https://uc.example.com:7225", "tcp://uc.example.com"))
        .unwrap();
    assert!(
        plain
            .warnings
            .iter()
            .any(|w| w.key == "ucserver.url" && w.message.contains("readable")),
        "{:?}",
        plain.warnings
    );
}

#[test]
fn an_https_url_on_port_7222_is_warned_to_be_the_native_port() {
    let config =
        parse_text(&MINIMAL.replace("https://uc.example.com:7225", "https://uc.example.com:7222"))
            .unwrap();
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.key == "ucserver.url" && w.message.contains("tcp://host:7222")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn config_init_asks_for_the_transport_and_explains_both() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("config.toml");
    let answers = INIT_ANSWERS
        .replace("/nonexistent/ca.pem", "")
        .replacen("web-service\n", "native\n", 1)
        .replacen(
            "https://uc.example.com:7225\n",
            "tcp+starttls://uc.example.com:7222\n",
            1,
        );
    let (result, output) = run_init(&answers, &target, false);
    result.unwrap();
    assert!(
        output.contains("must be enabled in the UCServer"),
        "{output}"
    );
    assert!(output.contains("nothing to enable"), "{output}");
    assert!(
        output.contains("expected a URL like tcp+starttls://ucserver.example.com:7222"),
        "the https-style ftp:// answer is refused for the native port: {output}"
    );
    let text = fs::read_to_string(&target).unwrap();
    assert!(
        text.contains("url = \"tcp+starttls://uc.example.com:7222\""),
        "{text}"
    );
}

#[test]
fn autodiscover_trusted_hosts_are_parsed_and_a_bad_entry_is_named() {
    let config = parse_text(&with_key(
        "exchange",
        r#"autodiscover_trusted_hosts = ["Mail.Corp.Local", "*.branch.example.com"]"#,
    ))
    .unwrap();
    assert_eq!(
        config.exchange.autodiscover_trusted_hosts,
        TrustedHosts::parse(&["mail.corp.local", "*.branch.example.com"]).unwrap()
    );
    assert!(parse_text(MINIMAL)
        .unwrap()
        .exchange
        .autodiscover_trusted_hosts
        .is_empty());

    let error = error_of(&with_key(
        "exchange",
        r#"autodiscover_trusted_hosts = ["https://mail.corp.local/"]"#,
    ));
    assert_eq!(error.key.as_deref(), Some(TRUSTED_HOSTS_KEY));
    assert!(
        error.message.contains("\"https://mail.corp.local/\""),
        "{error}"
    );
    assert!(error.message.contains("without scheme"), "{error}");
}

#[test]
fn ntlm_over_an_http_ews_url_warns_that_the_ntlm_response_can_be_cracked_offline() {
    let config = parse_text(&with_key(
        "exchange",
        r#"url = "http://mail.corp.example.com/EWS/Exchange.asmx""#,
    ))
    .unwrap();
    let warning = config
        .warnings
        .iter()
        .find(|w| w.key == "exchange.url")
        .expect("a warning for exchange.url");
    assert!(
        warning.message.contains("NTLM response") && warning.message.contains("offline"),
        "{warning}"
    );
}

#[test]
fn monitoring_is_off_unless_listen_is_set() {
    assert_eq!(parse_text(MINIMAL).unwrap().monitoring.listen, None);
    let config = parse_text(&with_key("monitoring", "listen = \"127.0.0.1:9464\"")).unwrap();
    assert_eq!(
        config.monitoring.listen,
        Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9464)))
    );
    let config = parse_text(&with_key("monitoring", "listen = \"[::1]:9464\"")).unwrap();
    assert!(config.monitoring.listen.unwrap().ip().is_loopback());
}

#[test]
fn notifications_default_to_auto_within_exchanges_on_premises_limits() {
    let config = parse_text(MINIMAL).unwrap();
    assert_eq!(
        config.exchange.notifications,
        NotificationSettings {
            mode: NotificationMode::Auto,
            max_connections: 3,
            max_subscriptions: 5000,
            subscriptions_per_connection: 200,
            connection_timeout_minutes: 30,
        }
    );
    assert_eq!(config.exchange.notifications.capacity(), 600);
}

#[test]
fn notifications_and_their_limits_are_read() {
    let text = with_key(
        "exchange",
        "notifications = \"streaming\"\nnotification_connections = 10\nnotification_subscriptions = 300\nsubscriptions_per_connection = 50\nnotification_connection_timeout_minutes = 5",
    );
    let settings = parse_text(&text).unwrap().exchange.notifications;
    assert_eq!(settings.mode, NotificationMode::Streaming);
    assert_eq!(settings.max_connections, 10);
    assert_eq!(settings.max_subscriptions, 300);
    assert_eq!(settings.subscriptions_per_connection, 50);
    assert_eq!(settings.connection_timeout_minutes, 5);
    assert_eq!(settings.capacity(), 300);
    let off = parse_text(&with_key("exchange", "notifications = \"off\"")).unwrap();
    assert_eq!(off.exchange.notifications.mode, NotificationMode::Off);
}

#[test]
fn notification_limits_beyond_exchanges_are_refused_with_the_fix() {
    let err = error_of(&with_key("exchange", "subscriptions_per_connection = 201"));
    assert_eq!(
        err.key.as_deref(),
        Some("exchange.subscriptions_per_connection")
    );
    assert!(err.message.contains("at most 200"), "{err}");
    let err = error_of(&with_key(
        "exchange",
        "notification_connection_timeout_minutes = 31",
    ));
    assert!(err.message.contains("above 30 minutes"), "{err}");
    let err = error_of(&with_key("exchange", "notification_connections = 0"));
    assert!(err.message.contains("HangingConnectionLimit"), "{err}");
    let err = error_of(&with_key("exchange", "notifications = \"push\""));
    assert_eq!(err.key.as_deref(), Some("exchange.notifications"));
    assert!(err.message.contains("auto"), "{err}");
}

/// `MINIMAL` with `[exchange]` keys added and its user name replaced.
fn exchange_with(username: &str, lines: &str) -> String {
    MINIMAL
        .replace(
            "username = 'CORP\\svc'",
            &format!("username = '{username}'"),
        )
        .replace("[exchange]\n", &format!("[exchange]\n{lines}\n"))
}

#[test]
fn kerberos_settings_reach_the_transport_as_written() {
    let config = parse_text(&exchange_with(
        "svc@corp.example.com",
        "auth = \"kerberos\"\nkerberos_kdc = [\"dc1.corp.example.com\", \"10.0.0.5:88\", \"[2001:db8::1]:8888\"]\nkerberos_realm = \"corp.example.com\"\nkerberos_spn = \"HTTP/ews-lb.corp.example.com\"\nkerberos_kdc_timeout_seconds = 3",
    ))
    .unwrap();
    assert_eq!(config.exchange.credentials.scheme(), AuthScheme::Kerberos);
    let kerberos = &config.exchange.transport.kerberos;
    assert_eq!(
        kerberos.kdcs,
        ["dc1.corp.example.com", "10.0.0.5:88", "[2001:db8::1]:8888"]
    );
    assert_eq!(kerberos.realm.as_deref(), Some("CORP.EXAMPLE.COM"));
    assert_eq!(
        kerberos.spn.as_deref(),
        Some("HTTP/ews-lb.corp.example.com")
    );
    assert_eq!(kerberos.kdc_timeout, Duration::from_secs(3));
    assert!(!kerberos.allow_ntlm_fallback, "kerberos never falls back");
    assert_eq!(
        kerberos.fallback_kdc, None,
        "filled in by the composition root"
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    // One KDC as a plain string; negotiate allows the fallback by default;
    // no realm with a UPN: the toolkit takes the UPN's domain.
    let config = parse_text(&exchange_with(
        "svc@corp.example.com",
        "auth = \"negotiate\"\nkerberos_kdc = \"dc1.corp.example.com\"",
    ))
    .unwrap();
    let kerberos = &config.exchange.transport.kerberos;
    assert_eq!(config.exchange.credentials.scheme(), AuthScheme::Negotiate);
    assert_eq!(kerberos.kdcs, ["dc1.corp.example.com"]);
    assert!(kerberos.allow_ntlm_fallback);
    assert_eq!(kerberos.realm, None);
    assert_eq!(kerberos.spn, None);
    assert_eq!(kerberos.kdc_timeout, Duration::from_secs(10));
    let off = parse_text(&exchange_with(
        "svc@corp.example.com",
        "auth = \"negotiate\"\nallow_ntlm_fallback = false",
    ))
    .unwrap();
    assert!(!off.exchange.transport.kerberos.allow_ntlm_fallback);
}

#[test]
fn kerberos_keys_that_do_not_apply_or_contradict_the_scheme_are_refused() {
    let err = error_of(&exchange_with(
        "svc@corp.example.com",
        "auth = \"kerberos\"\nallow_ntlm_fallback = true",
    ));
    assert_eq!(err.key.as_deref(), Some("exchange.allow_ntlm_fallback"));
    assert!(
        err.message.contains("contradicts auth = \"kerberos\""),
        "{err}"
    );
    assert!(err.message.contains("auth = \"negotiate\""), "{err}");
    // false says what kerberos means anyway.
    parse_text(&exchange_with(
        "svc@corp.example.com",
        "auth = \"kerberos\"\nallow_ntlm_fallback = false",
    ))
    .unwrap();
    for (auth, line, key) in [
        ("ntlm", "allow_ntlm_fallback = true", "allow_ntlm_fallback"),
        (
            "basic",
            "kerberos_realm = \"CORP.EXAMPLE.COM\"",
            "kerberos_realm",
        ),
        (
            "ntlm",
            "kerberos_spn = \"HTTP/mail.corp.example.com\"",
            "kerberos_spn",
        ),
        ("ntlm", "kerberos_kdc = \"dc1\"", "kerberos_kdc"),
        (
            "ntlm",
            "kerberos_kdc_timeout_seconds = 5",
            "kerberos_kdc_timeout_seconds",
        ),
    ] {
        let err = error_of(&exchange_with(
            "svc@corp.example.com",
            &format!("auth = \"{auth}\"\n{line}"),
        ));
        assert_eq!(err.key.as_deref(), Some(format!("exchange.{key}").as_str()));
        assert!(
            err.message.contains("applies to auth = \"negotiate\""),
            "{err}"
        );
        assert!(
            err.message.contains(&format!("auth is \"{auth}\"")),
            "{err}"
        );
        assert!(err.line.is_some(), "{err}");
    }
}

#[test]
fn invalid_kerberos_values_are_refused_with_the_key_and_the_expected_form() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "kerberos_kdc = \"tcp://dc1:88\"",
            "exchange.kerberos_kdc",
            "without a scheme",
        ),
        (
            "kerberos_kdc = \"dc1:0\"",
            "exchange.kerberos_kdc",
            "port from 1 to 65535",
        ),
        (
            "kerberos_kdc = \"dc1:kdc\"",
            "exchange.kerberos_kdc",
            "port from 1 to 65535",
        ),
        (
            "kerberos_kdc = \"2001:db8::1\"",
            "exchange.kerberos_kdc",
            "brackets",
        ),
        (
            "kerberos_kdc = \"dc 1\"",
            "exchange.kerberos_kdc",
            "host or host:port",
        ),
        (
            "kerberos_kdc = []",
            "exchange.kerberos_kdc",
            "remove the key",
        ),
        ("kerberos_kdc = 88", "exchange.kerberos_kdc", "host:port"),
        (
            "kerberos_spn = \"mail.corp.example.com\"",
            "exchange.kerberos_spn",
            "service/host[:port]",
        ),
        (
            "kerberos_spn = \"https://mail.corp.example.com/EWS\"",
            "exchange.kerberos_spn",
            "is a URL",
        ),
        (
            "kerberos_spn = \"HTTP/mail@CORP.EXAMPLE.COM\"",
            "exchange.kerberos_spn",
            "without it",
        ),
        (
            "kerberos_spn = \"HTTP/\"",
            "exchange.kerberos_spn",
            "HTTP/mail.corp.example.com",
        ),
        (
            "kerberos_spn = \"HTTP/mail:99999\"",
            "exchange.kerberos_spn",
            "service/host[:port]",
        ),
        (
            "kerberos_realm = \"\"",
            "exchange.kerberos_realm",
            "is empty",
        ),
        (
            "kerberos_realm = \"svc@CORP\"",
            "exchange.kerberos_realm",
            "CORP.EXAMPLE.COM",
        ),
        (
            "kerberos_kdc_timeout_seconds = 0",
            "exchange.kerberos_kdc_timeout_seconds",
            "1 to 120",
        ),
        (
            "kerberos_kdc_timeout_seconds = 121",
            "exchange.kerberos_kdc_timeout_seconds",
            "1 to 120",
        ),
    ];
    for (line, key, expected) in cases {
        let err = error_of(&exchange_with(
            "svc@corp.example.com",
            &format!("auth = \"negotiate\"\n{line}"),
        ));
        assert_eq!(err.key.as_deref(), Some(*key), "{line}: {err}");
        assert!(err.message.contains(expected), "{line}: {err}");
        assert!(err.line.is_some(), "{line}: {err}");
    }
    // An SPN with a port, or of another service class (a warning: used as written).
    let config = parse_text(&exchange_with(
        "svc@corp.example.com",
        "auth = \"negotiate\"\nkerberos_spn = \"HTTP/mail.corp.example.com:8443\"",
    ))
    .unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let config = parse_text(&exchange_with(
        "svc@corp.example.com",
        "auth = \"negotiate\"\nkerberos_spn = \"exchangeMDB/mail.corp.example.com\"",
    ))
    .unwrap();
    assert_eq!(
        config.exchange.transport.kerberos.spn.as_deref(),
        Some("exchangeMDB/mail.corp.example.com")
    );
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.key == "exchange.kerberos_spn" && w.message.contains("HTTP/<host>")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn a_domain_backslash_user_without_a_realm_is_an_error_where_kerberos_is_required() {
    for lines in [
        "auth = \"kerberos\"",
        "auth = \"negotiate\"\nallow_ntlm_fallback = false",
    ] {
        let err = error_of(&exchange_with("CORP\\svc", lines));
        assert_eq!(err.key.as_deref(), Some("exchange.kerberos_realm"), "{err}");
        assert!(
            err.message
                .contains("kerberos_realm = \"CORP.EXAMPLE.COM\""),
            "{err}"
        );
        assert!(err.message.contains("svc@<domain>"), "{err}");
    }
    // With the fallback allowed it works as before, with NTLM, and says so.
    let config = parse_text(&exchange_with("CORP\\svc", "auth = \"negotiate\"")).unwrap();
    let warning = config
        .warnings
        .iter()
        .find(|w| w.key == "exchange.kerberos_realm")
        .unwrap_or_else(|| panic!("{:?}", config.warnings));
    assert!(
        warning.message.contains("Kerberos is never tried"),
        "{warning}"
    );
    // The realm set: no warning, no error.
    let config = parse_text(&exchange_with(
        "CORP\\svc",
        "auth = \"kerberos\"\nkerberos_realm = \"CORP.EXAMPLE.COM\"",
    ))
    .unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}
