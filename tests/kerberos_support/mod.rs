//! Kerberos test support (issue #20): the Samba AD KDC of
//! `scripts/test-dc.sh` (CI: started by `.ci/run`) and the MIT Kerberos
//! acceptor `tests/fixtures/kerberos/acceptor.py`, an HTTPS server behind
//! `WWW-Authenticate: Negotiate` that is no code of ours. A test file
//! `tests/*.rs` takes it with `mod kerberos_support;`; a test crate in a
//! directory (`tests/client/main.rs`) with
//! `#[path = "../kerberos_support/mod.rs"] mod kerberos_support;`.
//!
//! Nothing here waits on time passing: waits are for conditions (a line on
//! stdout, a process exiting), bounded by generous timeouts.
#![allow(dead_code)] // each test takes only some of it

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The interpreter python3-gssapi belongs to (Debian's, not a pyenv shim).
pub const PYTHON: &str = "/usr/bin/python3";
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// Start-up of the acceptor: Python, gssapi and the keytab; seconds when
/// the machine is idle, far more under three parallel builds.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// One probe run: KDC exchanges and HTTPS requests, each bounded at 30 s
/// inside the probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(180);

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    manifest_dir().join("tests/fixtures/kerberos").join(name)
}

/// The Kerberos settings `scripts/test-dc.sh env` prints.
#[derive(Debug, Clone)]
pub struct KerberosDc {
    /// `CORP.EXAMPLE.COM`
    pub realm: String,
    /// `127.0.0.1:88` (TCP)
    pub kdc: String,
    /// `HTTP/localhost`: an SPN of the fake Exchange service account
    pub spn: String,
    /// `HTTP/ex1.corp.example.com`: its other SPN
    pub spn_alt: String,
    /// `HTTP/rc4only.corp.example.com`: an account with AES disabled (an
    /// AES-only client gets `KDC_ERR_ETYPE_NOSUPP`)
    pub spn_rc4_only: String,
    /// The service account's AES keys (mode 0600)
    pub keytab: PathBuf,
    /// `svc-exchange@CORP.EXAMPLE.COM`
    pub service_account: String,
    /// `svc-ews@corp.example.com`: the EWS service user (UPN form)
    pub client_user: String,
    pub client_password: String,
    /// The password of the seeded staff (grace: wrong-password tests, never
    /// locks out; erin: disabled; frank: locked out)
    pub test_user_password: String,
    /// The test CA: trust it to reach the acceptor over TLS
    pub ca_file: PathBuf,
    /// The DC's server certificate (localhost, 127.0.0.1, ::1) and key,
    /// which the acceptor serves too
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Samba's DNS (SRV `_kerberos._tcp.<realm>`), when the DC serves it
    pub dns_server: Option<SocketAddr>,
    /// Everything `env` printed
    pub vars: HashMap<String, String>,
}

impl KerberosDc {
    /// Reads `scripts/test-dc.sh env`; panics with the fix when the DC does
    /// not run (same messages as replicator/tests/engine/directory.rs).
    pub fn from_env() -> Self {
        let script = manifest_dir().join("scripts/test-dc.sh");
        let output = Command::new(&script)
            .arg("env")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        if !output.status.success() {
            let why = String::from_utf8_lossy(&output.stderr);
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("the test domain controller must run in CI (.ci/run starts it with scripts/test-dc.sh start): {why}");
            }
            panic!("these tests need the Samba test domain controller; start it with `scripts/test-dc.sh start` (installs Samba via apt when missing, needs root): {why}");
        }
        let vars: HashMap<String, String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
            .collect();
        let var = |name: &str| -> String {
            vars.get(name).cloned().unwrap_or_else(|| {
                panic!("scripts/test-dc.sh env printed no {name}: the running DC predates the Kerberos seed; re-seed it with `scripts/test-dc.sh start` (or `seed`)")
            })
        };
        Self {
            realm: var("KRB_REALM"),
            kdc: var("KRB_KDC"),
            spn: var("KRB_SPN"),
            spn_alt: var("KRB_SPN_ALT"),
            spn_rc4_only: var("KRB_SPN_RC4_ONLY"),
            keytab: PathBuf::from(var("KRB_KEYTAB")),
            service_account: var("KRB_SERVICE_ACCOUNT"),
            client_user: var("KRB_CLIENT_USER"),
            client_password: var("KRB_CLIENT_PASSWORD"),
            test_user_password: var("TEST_USER_PASSWORD"),
            ca_file: PathBuf::from(var("CA_FILE")),
            tls_cert: PathBuf::from(var("TLS_CERT_FILE")),
            tls_key: PathBuf::from(var("TLS_KEY_FILE")),
            dns_server: vars.get("KRB_DNS_SERVER").map(|v| {
                v.parse()
                    .unwrap_or_else(|e| panic!("KRB_DNS_SERVER={v}: {e}"))
            }),
            vars,
        }
    }

    /// A seeded user's UPN: `grace` → `grace@corp.example.com`.
    pub fn upn(&self, name: &str) -> String {
        format!("{name}@{}", self.realm.to_lowercase())
    }
}

/// What the acceptor does with a good ticket (`acceptor.py --mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AcceptorMode {
    /// 200 with the mutual-authentication token
    #[default]
    Normal,
    /// 200 without the server's token
    NoMutualToken,
    /// every handshake after the first gets the first one's server token
    ReplayServerToken,
    /// 401 even for a good ticket (wrong key on the service account)
    Refuse,
}

impl AcceptorMode {
    fn arg(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::NoMutualToken => "no-mutual-token",
            Self::ReplayServerToken => "replay-server-token",
            Self::Refuse => "refuse",
        }
    }
}

/// Channel bindings the acceptor requires (`--channel-bindings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelBindings {
    #[default]
    None,
    /// RFC 5929 `tls-server-end-point` of its certificate (SHA-256). MIT
    /// still accepts a client that sends no bindings at all.
    TlsServerEndPoint,
}

impl ChannelBindings {
    fn arg(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::TlsServerEndPoint => "tls-server-end-point",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AcceptorOptions {
    pub mode: AcceptorMode,
    pub channel_bindings: ChannelBindings,
    /// libfaketime's `FAKETIME` for the acceptor's clock, e.g. `"+1h"`
    /// (clock-skew tests); `None`: the real clock
    pub faketime: Option<String>,
    /// the body of every authenticated answer (text/xml); empty: `<ok/>`
    pub answer: Vec<u8>,
    /// plain http instead of TLS
    pub plain: bool,
}

/// One line of the acceptor's handshake log.
#[derive(Debug, Clone, PartialEq)]
pub struct Handshake {
    /// 1, 2, ... in the order connections were accepted
    pub connection: u64,
    /// `ok`, `failed` (the accept failed), `refused` (mode `refuse`)
    pub outcome: String,
    /// the client principal, e.g. `svc-ews@CORP.EXAMPLE.COM` (accepted contexts)
    pub initiator: Option<String>,
    /// the negotiated mechanism: `1.2.840.113554.1.2.2` (krb5)
    pub mechanism: Option<String>,
    /// the mechanism the client's initial token named: `1.3.6.1.5.5.2`
    /// (SPNEGO), `1.2.840.113554.1.2.2` (raw krb5) or `ntlmssp`
    pub token_mechanism: Option<String>,
    /// MIT's error text when the accept failed
    pub error: Option<String>,
    /// whether the 401 carried MIT's error token (a KRB-ERROR)
    pub error_token: bool,
    /// whether the 200 carried a server token
    pub server_token: bool,
    /// whether that token was an earlier handshake's (replay mode)
    pub server_token_replayed: bool,
    /// all fields as logged
    pub fields: BTreeMap<String, Json>,
}

pub const SPNEGO_OID: &str = "1.3.6.1.5.5.2";
pub const KRB5_OID: &str = "1.2.840.113554.1.2.2";

/// The acceptor, running; killed on drop.
pub struct Acceptor {
    child: Child,
    port: u16,
    plain: bool,
    dir: tempfile::TempDir,
    ca_file: PathBuf,
}

impl Acceptor {
    /// Starts the acceptor with the keytab and certificate of the running
    /// test DC.
    pub fn start(options: AcceptorOptions) -> Self {
        Self::start_with(&KerberosDc::from_env(), options)
    }

    pub fn start_with(dc: &KerberosDc, options: AcceptorOptions) -> Self {
        check_python_gssapi();
        let dir = tempfile::tempdir().expect("temporary directory for the acceptor");
        // MIT reads no host configuration (/etc/krb5.conf) and keeps its
        // replay cache here, not in /var/tmp shared with other runs
        let krb5_conf = dir.path().join("krb5.conf");
        std::fs::write(&krb5_conf, "").expect("write the acceptor's krb5.conf");
        let mut command = Command::new(PYTHON);
        command
            .arg(fixture("acceptor.py"))
            .arg("--keytab")
            .arg(&dc.keytab)
            .args(["--mode", options.mode.arg()])
            .args(["--channel-bindings", options.channel_bindings.arg()])
            .arg("--log")
            .arg(dir.path().join("handshakes.jsonl"))
            .env("KRB5_CONFIG", &krb5_conf)
            .env("KRB5RCACHEDIR", dir.path())
            .env("KRB5_TRACE", dir.path().join("krb5-trace.log"))
            .env_remove("KRB5_KTNAME")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("stderr.log")).expect("acceptor stderr"),
            ));
        if options.plain {
            command.arg("--plain");
        } else {
            command
                .arg("--cert")
                .arg(&dc.tls_cert)
                .arg("--key")
                .arg(&dc.tls_key);
        }
        if !options.answer.is_empty() {
            let answer = dir.path().join("answer.xml");
            std::fs::write(&answer, &options.answer).expect("write the acceptor's answer");
            command.arg("--answer").arg(answer);
        }
        if let Some(faketime) = &options.faketime {
            assert!(
                Path::new(LIBFAKETIME).exists(),
                "{LIBFAKETIME} is missing: install faketime (scripts/install-test-packages.sh)"
            );
            command
                .env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME", faketime);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {PYTHON} acceptor.py: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            // keep draining: the acceptor prints nothing else, but a full
            // pipe must never block it
            for _ in lines {}
        });
        let stderr_file = dir.path().join("stderr.log");
        let fail = |child: &mut Child, what: String| -> ! {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(&stderr_file).unwrap_or_default();
            panic!("the Kerberos acceptor (tests/fixtures/kerberos/acceptor.py) {what}; its stderr:\n{stderr}")
        };
        let port = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(Ok(line))) => match line.strip_prefix("LISTENING ").map(str::parse::<u16>) {
                Some(Ok(port)) => port,
                _ => fail(
                    &mut child,
                    format!("printed {line:?} instead of LISTENING <port>"),
                ),
            },
            Ok(_) => fail(&mut child, "exited before listening".into()),
            Err(_) => fail(
                &mut child,
                format!("did not listen within {START_TIMEOUT:?}"),
            ),
        };
        Self {
            child,
            port,
            plain: options.plain,
            dir,
            ca_file: dc.ca_file.clone(),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `https://localhost:<port>/EWS/Exchange.asmx` (http:// when plain):
    /// `localhost`, so the default SPN is `HTTP/localhost`, one of the
    /// service account's.
    pub fn url(&self) -> String {
        let scheme = if self.plain { "http" } else { "https" };
        format!("{scheme}://localhost:{}/EWS/Exchange.asmx", self.port)
    }

    /// The CA that issued the acceptor's certificate.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The handshakes so far. The acceptor logs each one before it
    /// answers, so after a response the client got, its line is here.
    pub fn handshakes(&self) -> Vec<Handshake> {
        let text =
            std::fs::read_to_string(self.dir.path().join("handshakes.jsonl")).unwrap_or_default();
        text.lines()
            .map(|line| {
                let fields = parse_flat_json(line)
                    .unwrap_or_else(|e| panic!("acceptor log line {line:?}: {e}"));
                Handshake::from_fields(fields)
            })
            .collect()
    }

    /// Waits (bounded, 60 s) until at least `n` handshakes are logged.
    pub fn wait_for_handshakes(&self, n: usize) -> Vec<Handshake> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let handshakes = self.handshakes();
            if handshakes.len() >= n || Instant::now() > deadline {
                return handshakes;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// MIT's trace of the acceptor (`KRB5_TRACE`), for failure messages.
    pub fn krb5_trace(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("krb5-trace.log")).unwrap_or_default()
    }

    /// What the acceptor wrote on stderr (start-up errors, dropped connections).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Handshake {
    fn from_fields(fields: BTreeMap<String, Json>) -> Self {
        let text = |k: &str| match fields.get(k) {
            Some(Json::String(s)) => Some(s.clone()),
            _ => None,
        };
        let flag = |k: &str| matches!(fields.get(k), Some(Json::Bool(true)));
        Self {
            connection: match fields.get("connection") {
                Some(Json::Number(n)) => *n as u64,
                other => panic!("acceptor log: connection is {other:?}"),
            },
            outcome: text("outcome").expect("acceptor log: no outcome"),
            initiator: text("initiator"),
            mechanism: text("mechanism"),
            token_mechanism: text("token_mechanism"),
            error: text("error"),
            error_token: flag("error_token"),
            server_token: flag("server_token"),
            server_token_replayed: flag("server_token_replayed"),
            fields,
        }
    }
}

fn check_python_gssapi() {
    let ok = Command::new(PYTHON)
        .args(["-c", "import gssapi"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{PYTHON} cannot import gssapi: install python3-gssapi (scripts/install-test-packages.sh, as root)"
    );
}

/// What the independent client `probe_client.py` does.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// `user@corp.example.com` or `user@CORP.EXAMPLE.COM`
    pub user: String,
    pub password: String,
    /// e.g. `HTTP/localhost`
    pub spn: String,
    /// SPNEGO (as Windows sends) or a raw krb5 token
    pub spnego: bool,
    /// `none`, `tls-server-end-point` or `wrong`
    pub channel_bindings: &'static str,
    /// offer only AES enctypes, as sspi does
    pub aes_only: bool,
    /// handshakes, each on its own connection
    pub handshakes: u32,
}

impl ProbeOptions {
    /// The EWS service user against the default SPN, once, SPNEGO.
    pub fn client(dc: &KerberosDc) -> Self {
        Self {
            user: dc.client_user.clone(),
            password: dc.client_password.clone(),
            spn: dc.spn.clone(),
            spnego: true,
            channel_bindings: "none",
            aes_only: false,
            handshakes: 1,
        }
    }
}

/// The probe's verdict: `outcome` is `ok`, `kdc-error`, `http-status`,
/// `no-mutual-token`, `bad-server-token` or `error`.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    pub outcome: String,
    /// e.g. `KDC_ERR_PREAUTH_FAILED`, `KRB_AP_ERR_SKEW`
    pub krb_error: Option<String>,
    pub status: Option<u16>,
    pub fields: BTreeMap<String, Json>,
}

/// Runs `probe_client.py` against the acceptor (password in its
/// environment, never its arguments); bounded by 180 s.
pub fn probe(dc: &KerberosDc, acceptor: &Acceptor, options: &ProbeOptions) -> ProbeResult {
    check_python_gssapi();
    let mut command = Command::new(PYTHON);
    command
        .arg(fixture("probe_client.py"))
        .args(["--url", &acceptor.url()])
        .args(["--user", &options.user])
        .args(["--spn", &options.spn])
        .args(["--kdc", &dc.kdc])
        .arg("--ca-file")
        .arg(acceptor.ca_file())
        .args(["--mech", if options.spnego { "spnego" } else { "krb5" }])
        .args(["--channel-bindings", options.channel_bindings])
        .args(["--handshakes", &options.handshakes.to_string()])
        .args(options.aes_only.then_some("--aes-only"))
        .env("PROBE_PASSWORD", &options.password)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {PYTHON} probe_client.py: {e}"));
    let output = wait_bounded(child, PROBE_TIMEOUT, "probe_client.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let fields = parse_flat_json(line).unwrap_or_else(|e| {
        panic!(
            "probe_client.py printed {stdout:?} ({e}); stderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let text = |k: &str| match fields.get(k) {
        Some(Json::String(s)) => Some(s.clone()),
        _ => None,
    };
    ProbeResult {
        outcome: text("outcome").unwrap_or_default(),
        krb_error: text("krb_error"),
        status: match fields.get("status") {
            Some(Json::Number(n)) => Some(*n as u16),
            _ => None,
        },
        fields,
    }
}

/// Waits for a child without a timed assertion: the bound is generous and
/// only turns a hang into a failure with the output so far.
fn wait_bounded(mut child: Child, limit: Duration, what: &str) -> std::process::Output {
    let (tx, rx) = mpsc::channel();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_tx = tx.clone();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = std::io::Read::read_to_end(s, &mut buf);
        }
        let _ = out_tx.send((true, buf));
    });
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = std::io::Read::read_to_end(s, &mut buf);
        }
        let _ = tx.send((false, buf));
    });
    let deadline = Instant::now() + limit;
    let (mut out, mut err) = (None, None);
    while out.is_none() || err.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((true, buf)) => out = Some(buf),
            Ok((false, buf)) => err = Some(buf),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not finish within {limit:?}");
            }
        }
    }
    let status = child.wait().expect("wait for the probe");
    std::process::Output {
        status,
        stdout: out.unwrap_or_default(),
        stderr: err.unwrap_or_default(),
    }
}

/// A value of the flat JSON objects the fixtures print (no nesting needed).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    /// an array or object inside the object, kept as its text
    Raw(String),
}

/// Parses `{"key": value, ...}` as Python's `json.dumps` writes it; nested
/// arrays and objects are kept as text (`Json::Raw`).
pub fn parse_flat_json(text: &str) -> Result<BTreeMap<String, Json>, String> {
    let mut p = JsonParser {
        s: text.trim().as_bytes(),
        i: 0,
    };
    let mut fields = BTreeMap::new();
    p.expect(b'{')?;
    p.ws();
    if p.peek() == Some(b'}') {
        return Ok(fields);
    }
    loop {
        p.ws();
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        let value = p.value()?;
        fields.insert(key, value);
        p.ws();
        match p.next() {
            Some(b',') => continue,
            Some(b'}') => return Ok(fields),
            other => return Err(format!("expected , or }} at {}, got {other:?}", p.i)),
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.i += 1;
        c
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        match self.next() {
            Some(x) if x == c => Ok(()),
            other => Err(format!(
                "expected {:?} at {}, got {other:?}",
                c as char, self.i
            )),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = String::new();
        let start = self.i;
        loop {
            match self.next() {
                None => return Err(format!("unterminated string from {start}")),
                Some(b'"') => return Ok(out),
                Some(b'\\') => match self.next() {
                    Some(b'n') => out.push('\n'),
                    Some(b't') => out.push('\t'),
                    Some(b'r') => out.push('\r'),
                    Some(b'b') => out.push('\u{8}'),
                    Some(b'f') => out.push('\u{c}'),
                    Some(b'u') => {
                        let hex = self
                            .s
                            .get(self.i..self.i + 4)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .ok_or("bad \\u escape")?;
                        self.i += 4;
                        out.push(char::from_u32(hex).unwrap_or('\u{fffd}'));
                    }
                    Some(c) => out.push(c as char),
                    None => return Err("unterminated escape".into()),
                },
                Some(_) => {
                    // copy the UTF-8 sequence as is
                    let from = self.i - 1;
                    let mut to = self.i;
                    while to < self.s.len() && self.s[to] & 0xC0 == 0x80 {
                        to += 1;
                    }
                    out.push_str(
                        std::str::from_utf8(&self.s[from..to]).map_err(|e| e.to_string())?,
                    );
                    self.i = to;
                }
            }
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        match self.peek() {
            Some(b'"') => self.string().map(Json::String),
            Some(b'{' | b'[') => {
                // skip a nested value, strings included, keeping its text
                let from = self.i;
                let mut depth = 0usize;
                loop {
                    match self.peek() {
                        None => return Err("unterminated nested value".into()),
                        Some(b'"') => {
                            self.string()?;
                            continue;
                        }
                        Some(b'{' | b'[') => depth += 1,
                        Some(b'}' | b']') => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                let raw = std::str::from_utf8(&self.s[from..self.i])
                                    .map_err(|e| e.to_string())?;
                                return Ok(Json::Raw(raw.to_owned()));
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                let from = self.i;
                while matches!(self.peek(), Some(c) if !matches!(c, b',' | b'}' | b' ')) {
                    self.i += 1;
                }
                let word = std::str::from_utf8(&self.s[from..self.i]).map_err(|e| e.to_string())?;
                match word {
                    "null" => Ok(Json::Null),
                    "true" => Ok(Json::Bool(true)),
                    "false" => Ok(Json::Bool(false)),
                    n => n
                        .parse()
                        .map(Json::Number)
                        .map_err(|_| format!("bad value {n:?}")),
                }
            }
        }
    }
}
