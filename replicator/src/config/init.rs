//! `config init`: asks for the essential values and writes the commented
//! configuration file (the same comments as `config.example.toml`; what was
//! not asked stays commented out with its example).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, Write};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::{document, LoadContext};

/// Why `config init` stopped.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{} already exists; pass --force to overwrite it, or give another path", .0.display())]
    Exists(PathBuf),
    #[error("the input ended before all questions were answered; nothing was written")]
    InputEnded,
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("terminal input/output failed: {0}")]
    Terminal(#[from] io::Error),
}

/// Turns terminal echo off while a password is typed; echo is restored
/// when dropped.
pub struct EchoOff {
    original: libc::termios,
}

impl EchoOff {
    /// `None` when stdin is no terminal (echo is then no concern).
    pub fn stdin() -> Option<EchoOff> {
        // SAFETY: tcgetattr/tcsetattr only read/write the termios struct we
        // own; fd 0 stays open for the life of the process.
        unsafe {
            let mut term: libc::termios = std::mem::zeroed();
            if libc::isatty(0) != 1 || libc::tcgetattr(0, &mut term) != 0 {
                return None;
            }
            let original = term;
            term.c_lflag &= !libc::ECHO;
            term.c_lflag |= libc::ECHONL;
            if libc::tcsetattr(0, libc::TCSANOW, &term) != 0 {
                return None;
            }
            Some(EchoOff { original })
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `stdin()`.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.original);
        }
    }
}

/// Questions and answers over any reader and writer.
pub struct Prompter<R, W> {
    input: R,
    output: W,
    hide_echo: fn() -> Option<EchoOff>,
}

impl<R: BufRead, W: Write> Prompter<R, W> {
    /// Passwords are read like any other line (tests, pipes).
    pub fn new(input: R, output: W) -> Self {
        Prompter {
            input,
            output,
            hide_echo: || None,
        }
    }

    fn read_line(&mut self) -> Result<String, InitError> {
        let mut line = String::new();
        if self.input.read_line(&mut line)? == 0 {
            return Err(InitError::InputEnded);
        }
        Ok(line.trim().to_owned())
    }

    fn say(&mut self, text: &str) -> Result<(), InitError> {
        writeln!(self.output, "{text}")?;
        Ok(())
    }

    /// Asks until the answer passes `check`; an empty answer takes
    /// `default`, or is refused when there is none.
    fn ask(
        &mut self,
        question: &str,
        default: Option<&str>,
        check: &dyn Fn(&str) -> Result<(), String>,
    ) -> Result<String, InitError> {
        loop {
            match default {
                Some(default) => write!(self.output, "{question} [{default}]: ")?,
                None => write!(self.output, "{question}: ")?,
            }
            self.output.flush()?;
            let answer = self.read_line()?;
            let answer = match (answer.is_empty(), default) {
                (true, Some(default)) => default.to_owned(),
                (true, None) => {
                    self.say("  an answer is needed")?;
                    continue;
                }
                (false, _) => answer,
            };
            match check(&answer) {
                Ok(()) => return Ok(answer),
                Err(problem) => self.say(&format!("  {problem}"))?,
            }
        }
    }

    /// An optional value: empty means not set.
    fn ask_optional(&mut self, question: &str) -> Result<Option<String>, InitError> {
        write!(self.output, "{question} (empty: none): ")?;
        self.output.flush()?;
        let answer = self.read_line()?;
        Ok((!answer.is_empty()).then_some(answer))
    }

    fn choose(
        &mut self,
        question: &str,
        choices: &[&str],
        default: &str,
    ) -> Result<String, InitError> {
        let listed = choices.join("/");
        self.ask(
            &format!("{question} ({listed})"),
            Some(default),
            &|answer| {
                if choices.contains(&answer) {
                    Ok(())
                } else {
                    Err(format!("answer one of {listed}"))
                }
            },
        )
    }

    /// yes/no, also answered y/n (any case).
    fn yes_no(&mut self, question: &str, default: bool) -> Result<bool, InitError> {
        let answer = self.ask(
            &format!("{question} (yes/no)"),
            Some(if default { "yes" } else { "no" }),
            &|answer| match parse_yes_no(answer) {
                Some(_) => Ok(()),
                None => Err("answer yes or no (y/n)".to_owned()),
            },
        )?;
        Ok(parse_yes_no(&answer) == Some(true))
    }

    fn ask_secret(&mut self, question: &str) -> Result<String, InitError> {
        loop {
            write!(self.output, "{question} (not shown): ")?;
            self.output.flush()?;
            let guard = (self.hide_echo)();
            let mut line = String::new();
            let read = self.input.read_line(&mut line);
            drop(guard);
            if read? == 0 {
                return Err(InitError::InputEnded);
            }
            // Only the line ending is removed: spaces may be part of a password.
            let password = line.trim_end_matches(['\n', '\r']).to_owned();
            if password.is_empty() {
                self.say("  the password must not be empty")?;
                continue;
            }
            return Ok(password);
        }
    }
}

impl Prompter<io::StdinLock<'static>, io::Stdout> {
    /// The process's terminal; passwords are not echoed.
    pub fn terminal() -> Self {
        Prompter {
            input: io::stdin().lock(),
            output: io::stdout(),
            hide_echo: EchoOff::stdin,
        }
    }
}

fn parse_yes_no(answer: &str) -> Option<bool> {
    match answer.to_ascii_lowercase().as_str() {
        "yes" | "y" => Some(true),
        "no" | "n" => Some(false),
        _ => None,
    }
}

/// An account as NTLM and Negotiate need it: a bare user name has no domain
/// to authenticate in.
fn check_account(answer: &str) -> Result<(), String> {
    if !answer.contains('\\') && !answer.contains('@') {
        return Err(format!(
            "{answer:?} has no domain: write DOMAIN\\{answer} or {answer}@domain"
        ));
    }
    ews_toolkit::transport::Credentials::new(answer, "x", Default::default())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Exchange's own names for its versions; 2019 and Subscription Edition
/// take the Exchange2016 schema (`ews::ExchangeVersion`).
fn check_exchange_version(answer: &str) -> Result<(), String> {
    answer
        .parse::<ews_toolkit::ExchangeVersion>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A web-service URL on the native port reaches a server that does not speak
/// HTTP there.
fn native_port_warning(url: &str) -> Option<&'static str> {
    let url = url::Url::parse(url).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.port() == Some(7222)).then_some(
        "warning: 7222 is the UCServer's native port, not its web service (7224 http, \
         7225 https); for the native port answer `native` to the transport question \
         and give tcp+starttls://host:7222",
    )
}

/// A TOML string literal.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn check_url(
    schemes: &'static [&'static str],
    example: &'static str,
) -> impl Fn(&str) -> Result<(), String> {
    move |answer| match url::Url::parse(answer) {
        Ok(url)
            if schemes.contains(&url.scheme()) && url.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            Ok(())
        }
        _ => Err(format!("expected a URL like {example}")),
    }
}

fn check_number(min: u32, max: u32) -> impl Fn(&str) -> Result<(), String> {
    move |answer| match answer.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(()),
        _ => Err(format!("expected a whole number from {min} to {max}")),
    }
}

fn no_check(_: &str) -> Result<(), String> {
    Ok(())
}

/// The answers as TOML literals by `(section, key)`.
type Values = BTreeMap<(&'static str, &'static str), String>;

/// Asks where a section's password comes from, and for it.
fn ask_password<R: BufRead, W: Write>(
    prompter: &mut Prompter<R, W>,
    values: &mut Values,
    section: &'static str,
    what: &str,
) -> Result<(), InitError> {
    let source = prompter.choose(
        &format!("How does the replicator get the {what} password: in this file, from a file, or from an environment variable?"),
        &["inline", "file", "env"],
        "inline",
    )?;
    match source.as_str() {
        "file" => {
            let path = prompter.ask(
                &format!("File holding only the {what} password"),
                None,
                &no_check,
            )?;
            values.insert((section, "password_file"), quoted(&path));
        }
        "env" => {
            let name = prompter.ask(
                &format!("Environment variable holding the {what} password"),
                None,
                &|answer: &str| {
                    if answer
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        Ok(())
                    } else {
                        Err("expected a variable name (letters, digits, _)".into())
                    }
                },
            )?;
            values.insert((section, "password_env"), quoted(&name));
        }
        _ => {
            let password = prompter.ask_secret(&format!("{what} password"))?;
            values.insert((section, "password"), quoted(&password));
        }
    }
    Ok(())
}

/// Asks the questions and writes the commented configuration file to
/// `target` (mode 0600: it may hold passwords). An existing file is only
/// replaced with `force`. Afterwards the file is loaded with `context` and
/// the result reported on the prompter's output.
pub fn init<R: BufRead, W: Write>(
    prompter: &mut Prompter<R, W>,
    target: &Path,
    force: bool,
    context: &LoadContext,
) -> Result<PathBuf, InitError> {
    if target.exists() && !force {
        return Err(InitError::Exists(target.to_owned()));
    }
    prompter.say(&format!(
        "Writing a configuration to {}. Press Enter to take the value in [brackets].",
        target.display()
    ))?;
    let mut values = Values::new();

    prompter.say("\nUCServer (where appointments are written)")?;
    prompter.say(
        "  web-service: ROSE over a WebSocket of the UCServer web service (https 7225,\n\
         \x20              http 7224); the web service must be enabled in the UCServer.\n\
         \x20 native:      ROSE over TCP on the UCServer's client port 7222, which every\n\
         \x20              installation has open; nothing to enable in the UCServer.",
    )?;
    let transport = prompter.choose(
        "UCServer transport",
        &["web-service", "native"],
        "web-service",
    )?;
    let url = if transport == "native" {
        prompter.ask(
            "UCServer native port URL",
            None,
            &check_url(
                &["tcp+starttls", "tcp"],
                "tcp+starttls://ucserver.example.com:7222 (TLS) or tcp://ucserver.example.com:7222",
            ),
        )?
    } else {
        prompter.ask(
            "UCServer web service URL",
            None,
            &check_url(
                &["https", "http"],
                "https://ucserver.example.com:7225 or http://ucserver.example.com:7224",
            ),
        )?
    };
    values.insert(("ucserver", "url"), quoted(&url));
    if let Some(warning) = native_port_warning(&url) {
        prompter.say(&format!("  {warning}"))?;
    }
    if url.trim().to_ascii_lowercase().starts_with("http://") {
        prompter.say("  Over http:// the administrator password crosses the network in clear.")?;
        let allow = prompter.yes_no("Accept that (allow_plain_http = true)", false)?;
        values.insert(("ucserver", "allow_plain_http"), allow.to_string());
    }
    let username = prompter.ask("UCServer administrator user name", None, &no_check)?;
    values.insert(("ucserver", "username"), quoted(&username));
    ask_password(prompter, &mut values, "ucserver", "UCServer administrator")?;
    if let Some(ca) = prompter.ask_optional("PEM file with the CA of the UCServer's certificate")? {
        values.insert(("ucserver", "ca_file"), quoted(&ca));
    }

    prompter.say("\nDirectory (where users' mailboxes are found)")?;
    let kind = prompter.choose("Directory kind", &["ad", "static"], "ad")?;
    values.insert(("directory", "kind"), quoted(&kind));
    if kind == "static" {
        let file = prompter.ask("File of user-to-mailbox rows", None, &no_check)?;
        values.insert(("directory", "file"), quoted(&file));
    } else {
        let url = prompter.ask(
            "Domain controller URL",
            None,
            &check_url(
                &["ldap", "ldaps"],
                "ldap://dc1.corp.example.com or ldaps://dc1.corp.example.com",
            ),
        )?;
        values.insert(("directory", "url"), quoted(&url));
        if url.starts_with("ldap://") {
            let starttls = prompter.yes_no("Protect the connection with StartTLS", true)?;
            values.insert(("directory", "starttls"), starttls.to_string());
        }
        let bind_user = prompter.ask(
            "Bind user (UPN, e.g. svc-replicator@corp.example.com)",
            None,
            &|answer: &str| {
                if answer.contains('@') || answer.contains('\\') {
                    Ok(())
                } else {
                    Err("expected user@domain or DOMAIN\\user".into())
                }
            },
        )?;
        values.insert(("directory", "bind_user"), quoted(&bind_user));
        ask_password(prompter, &mut values, "directory", "bind user")?;
        if let Some(base_dn) =
            prompter.ask_optional("Search base DN (default: the whole domain)")?
        {
            values.insert(("directory", "base_dn"), quoted(&base_dn));
        }
        if let Some(group) = prompter.ask_optional("Replicate only members of group (DN)")? {
            values.insert(("directory", "include_group"), quoted(&group));
        }
    }

    prompter.say("\nExchange (where calendars are read)")?;
    if let Some(url) = prompter.ask_optional(
        "EWS URL, e.g. https://mail.corp.example.com/EWS/Exchange.asmx (empty: autodiscover)",
    )? {
        let check = check_url(
            &["https", "http"],
            "https://mail.corp.example.com/EWS/Exchange.asmx",
        );
        let url = match check(&url) {
            Ok(()) => url,
            Err(problem) => {
                prompter.say(&format!("  {problem}"))?;
                prompter.ask("EWS URL", None, &check)?
            }
        };
        values.insert(("exchange", "url"), quoted(&url));
    }
    let username = prompter.ask(
        "Exchange account (DOMAIN\\user or user@domain)",
        None,
        &check_account,
    )?;
    values.insert(("exchange", "username"), quoted(&username));
    ask_password(prompter, &mut values, "exchange", "Exchange account")?;
    prompter.say(
        "  negotiate: Kerberos first, NTLM when Kerberos cannot start; kerberos: Kerberos only\n\
         \x20 (see docs/kerberos.md for the SPN and AES the domain needs).",
    )?;
    let auth = prompter.choose(
        "Authentication",
        &["ntlm", "negotiate", "kerberos", "basic"],
        "ntlm",
    )?;
    values.insert(("exchange", "auth"), quoted(&auth));
    // Only a DOMAIN\user name lacks the realm; a UPN's domain is the
    // default, and the KDC and SPN defaults fit most sites.
    if matches!(auth.as_str(), "negotiate" | "kerberos") && !username.contains('@') {
        let check_realm = |answer: &str| {
            if answer.is_empty()
                || answer.contains(['@', '/', '\\'])
                || answer.contains(char::is_whitespace)
            {
                Err("expected the domain's DNS name, e.g. CORP.EXAMPLE.COM".to_owned())
            } else {
                Ok(())
            }
        };
        let question = "Kerberos realm (the domain's DNS name, e.g. CORP.EXAMPLE.COM)";
        let realm = if auth == "kerberos" {
            Some(prompter.ask(question, None, &check_realm)?)
        } else {
            match prompter.ask_optional(&format!("{question}; without it NTLM is used"))? {
                Some(answer) if check_realm(&answer).is_err() => {
                    Some(prompter.ask(question, None, &check_realm)?)
                }
                answer => answer,
            }
        };
        if let Some(realm) = realm {
            values.insert(
                ("exchange", "kerberos_realm"),
                quoted(&realm.to_ascii_uppercase()),
            );
        }
    }
    let version = prompter.ask(
        "Exchange version (Exchange2013, Exchange2013_SP1, Exchange2016; Exchange2019 and ExchangeSE use Exchange2016)",
        Some(ews_toolkit::ExchangeVersion::default().as_str()),
        &check_exchange_version,
    )?;
    let version = version
        .parse::<ews_toolkit::ExchangeVersion>()
        .expect("checked by check_exchange_version");
    values.insert(("exchange", "version"), quoted(version.as_str()));

    prompter.say("\nReplication")?;
    let interval = prompter.ask("Minutes between cycles", Some("15"), &check_number(1, 1440))?;
    values.insert(("replication", "interval_minutes"), interval);
    let offline = prompter.yes_no("Only users whose ProCall client is not logged on", true)?;
    values.insert(("replication", "only_offline_users"), offline.to_string());
    // One spelling in the file; the command line's `times-only` is taken too.
    let private_mode = |answer: &str| match answer {
        "skip" | "times_only" | "full" => Some(answer.to_owned()),
        "times-only" => Some("times_only".to_owned()),
        _ => None,
    };
    let private = prompter.ask(
        "Private appointments (skip/times_only/full)",
        Some("skip"),
        &|answer| {
            private_mode(answer)
                .map(|_| ())
                .ok_or_else(|| "answer one of skip/times_only/full".to_owned())
        },
    )?;
    let private = private_mode(&private).expect("checked by the question");
    values.insert(("replication", "private_appointments"), quoted(&private));

    let text = document::render(&|section, key| {
        values
            .iter()
            .find(|((s, k), _)| *s == section && *k == key)
            .map(|(_, v)| v.clone())
    });
    write_file(target, &text, force)?;
    prompter.say(&format!("\nWrote {}.", target.display()))?;
    match super::load_with(target, context) {
        Ok(config) => {
            for warning in &config.warnings {
                prompter.say(&format!("warning: {warning}"))?;
            }
            prompter.say(&format!(
                "Check the connections with: ews-calendar-replicator check --config {}",
                target.display()
            ))?;
        }
        Err(error) => prompter.say(&format!("note: the file does not load yet: {error}"))?,
    }
    Ok(target.to_owned())
}

fn write_file(target: &Path, text: &str, force: bool) -> Result<(), InitError> {
    let error = |source| InitError::Write {
        path: target.to_owned(),
        source,
    };
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(error)?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if force {
        options.create(true).truncate(true);
    } else {
        // Refuses a file that appeared while the questions were answered.
        options.create_new(true);
    }
    let mut file = options.open(target).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            InitError::Exists(target.to_owned())
        } else {
            error(e)
        }
    })?;
    // `mode` applies only to a new file: an overwritten one keeps its mode,
    // so it is set here, before the passwords are written.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(error)?;
    file.write_all(text.as_bytes()).map_err(error)?;
    file.sync_all().map_err(error)
}

#[cfg(test)]
mod write_tests {
    use super::*;

    #[test]
    fn an_overwritten_file_is_left_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("config.toml");
        fs::write(&target, "old").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        write_file(&target, "password = \"new\"\n", true).unwrap();
        let mode = fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {:o}", mode & 0o777);
        assert_eq!(fs::read_to_string(&target).unwrap(), "password = \"new\"\n");
    }
}

#[cfg(test)]
mod answer_tests {
    use super::*;
    use std::io::Cursor;

    /// The answers of a full `init` with a static directory, by question;
    /// `change` replaces the answers given for one question.
    fn answers(change: &[(&str, &str)]) -> String {
        let mut answers = vec![
            ("transport", "web-service"),
            ("ucserver url", "https://uc.example.com:7225"),
            ("ucserver user", "Administrator"),
            ("ucserver password source", "inline"),
            ("ucserver password", "uc-pass"),
            ("ucserver ca", ""),
            ("directory kind", "static"),
            ("directory file", "users.toml"),
            ("ews url", "https://mail.example.com/EWS/Exchange.asmx"),
            ("exchange account", "CORP\\svc"),
            ("exchange password source", "inline"),
            ("exchange password", "ews-pass"),
            ("auth", "ntlm"),
            ("version", ""),
            ("interval", ""),
            ("offline only", ""),
            ("private", ""),
        ];
        for (question, answer) in change {
            let slot = answers
                .iter_mut()
                .find(|(q, _)| q == question)
                .unwrap_or_else(|| panic!("no question {question}"));
            slot.1 = answer;
        }
        answers.iter().map(|(_, a)| format!("{a}\n")).collect()
    }

    /// Runs `init` and returns what it printed and the file it wrote.
    fn run(change: &[(&str, &str)]) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("config.toml");
        let mut output = Vec::new();
        let mut prompter = Prompter::new(Cursor::new(answers(change).into_bytes()), &mut output);
        init(
            &mut prompter,
            &target,
            false,
            &LoadContext::with_vars([("HOME", "/h")]),
        )
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output)));
        (
            String::from_utf8(output).unwrap(),
            fs::read_to_string(&target).unwrap(),
        )
    }

    #[test]
    fn a_bare_exchange_user_name_is_asked_again() {
        let (output, file) = run(&[("exchange account", "svc\nCORP\\svc")]);
        assert!(
            output.contains("\"svc\" has no domain: write DOMAIN\\svc or svc@domain"),
            "{output}"
        );
        assert!(
            file.contains("username = 'CORP\\svc'") || file.contains("username = \"CORP\\\\svc\""),
            "{file}"
        );
    }

    #[test]
    fn yes_and_no_may_be_answered_y_and_n() {
        let (_, file) = run(&[("offline only", "n")]);
        assert!(file.contains("only_offline_users = false"), "{file}");
        let (_, file) = run(&[("offline only", "Y")]);
        assert!(file.contains("only_offline_users = true"), "{file}");
        let (output, file) = run(&[("offline only", "maybe\nn")]);
        assert!(output.contains("answer yes or no (y/n)"), "{output}");
        assert!(file.contains("only_offline_users = false"), "{file}");
    }

    #[test]
    fn exchange_2019_and_se_are_written_as_the_2016_schema() {
        for name in ["Exchange2019", "ExchangeSE", "exchange2016"] {
            let (_, file) = run(&[("version", name)]);
            assert!(
                file.contains("\nversion = \"Exchange2016\""),
                "{name}: {file}"
            );
        }
        let (output, file) = run(&[("version", "Exchange2020\nExchange2013")]);
        assert!(
            output.contains("unknown Exchange version \"Exchange2020\""),
            "{output}"
        );
        assert!(file.contains("\nversion = \"Exchange2013\""), "{file}");
        let (_, file) = run(&[]);
        assert!(file.contains("\nversion = \"Exchange2013_SP1\""), "{file}");
    }

    #[test]
    fn a_web_service_url_on_port_7222_is_warned_to_be_the_native_port() {
        let (output, _) = run(&[("ucserver url", "https://uc.example.com:7222")]);
        assert!(
            output.contains("warning: 7222 is the UCServer's native port"),
            "{output}"
        );
        let (output, _) = run(&[]);
        assert!(!output.contains("native port, not"), "{output}");
    }

    #[test]
    fn kerberos_is_offered_and_a_domain_backslash_user_is_asked_for_the_realm() {
        let (output, file) = run(&[("auth", "kerberos\ncorp.example.com")]);
        assert!(
            output.contains("(ntlm/negotiate/kerberos/basic)"),
            "{output}"
        );
        assert!(file.contains("\nauth = \"kerberos\""), "{file}");
        assert!(
            file.contains("\nkerberos_realm = \"CORP.EXAMPLE.COM\""),
            "{file}"
        );
        assert!(!output.contains("does not load"), "{output}");
        // negotiate: the realm may be left out (NTLM then), with the warning.
        let (output, file) = run(&[("auth", "negotiate\n")]);
        assert!(file.contains("\nauth = \"negotiate\""), "{file}");
        assert!(!file.contains("\nkerberos_realm ="), "{file}");
        assert!(output.contains("Kerberos is never tried"), "{output}");
        // A UPN names its realm: no question.
        let (output, file) = run(&[
            ("exchange account", "svc@corp.example.com"),
            ("auth", "kerberos"),
        ]);
        assert!(!output.contains("Kerberos realm"), "{output}");
        assert!(!file.contains("\nkerberos_realm ="), "{file}");
    }

    #[test]
    fn times_only_is_offered_and_written_in_the_files_spelling() {
        for answer in ["times_only", "times-only"] {
            let (output, file) = run(&[("private", answer)]);
            assert!(output.contains("(skip/times_only/full)"), "{output}");
            assert!(
                file.contains("private_appointments = \"times_only\""),
                "{answer}: {file}"
            );
        }
        let (output, _) = run(&[("private", "times only\nskip")]);
        assert!(
            output.contains("answer one of skip/times_only/full"),
            "{output}"
        );
    }
}
