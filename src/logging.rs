//! Log output from `[logging]`: stderr always, size-rotated files in a
//! directory when configured, and warnings and errors to the local syslog
//! socket (read by journald and by syslog daemons) when `syslog = true`, as
//! the estos service writes to the Windows event log.
//!
//! Secrets stay out of the logs because the types holding them redact
//! themselves in `Debug` (`Secret`, `Credentials`, the settings types).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

use tracing::Metadata;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Name of the current log file; rotated files get `.1`, `.2`, … appended.
pub const LOG_FILE_NAME: &str = "ews-calendar-replicator.log";
/// The local syslog socket (journald listens on it too).
pub const SYSLOG_SOCKET: &str = "/dev/log";
/// Tag of syslog messages.
pub const SYSLOG_IDENT: &str = "ews-calendar-replicator";

/// `[logging] level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    /// The `EnvFilter` directives: the level for this program; the TLS,
    /// HTTP, WebSocket and LDAP libraries at most `info`, because their
    /// debug output is large and says little about replication.
    fn filter_directives(self) -> String {
        let level = self.as_str();
        if self <= LogLevel::Info {
            level.to_owned()
        } else {
            format!(
                "{level},rustls=info,hyper=info,hyper_util=info,tungstenite=info,tokio_tungstenite=info,ldap3=info,sspi=info"
            )
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogLevel::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown log level {s:?}; expected error, warn, info, debug or trace")
            })
    }
}

/// `[logging]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingSettings {
    pub level: LogLevel,
    /// Where log files go; `None`: stderr only.
    pub directory: Option<PathBuf>,
    /// A file is rotated when a message would take it past this size.
    pub max_file_size_mb: u64,
    /// Log files kept, the current one included.
    pub max_files: usize,
    /// Warnings and errors also to the local syslog socket.
    pub syslog: bool,
}

impl Default for LoggingSettings {
    fn default() -> Self {
        LoggingSettings {
            level: LogLevel::Info,
            directory: None,
            max_file_size_mb: 10,
            max_files: 5,
            syslog: false,
        }
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("cannot write log files to {directory}: {source}; create the directory and make it writable for the service user, or change [logging] directory")]
    Directory {
        directory: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("[logging] syslog = true, but the syslog socket {socket} is not usable ({source}); start journald or a syslog daemon, or set syslog = false")]
    Syslog {
        socket: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("a global logger is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Installs the global subscriber for `settings`: stderr (coloured on a
/// terminal), the log files, syslog. Call once, early.
pub fn init(settings: &LoggingSettings) -> Result<(), LoggingError> {
    init_with(
        settings,
        Path::new(SYSLOG_SOCKET),
        BoxMakeWriter::new(io::stderr),
        io::IsTerminal::is_terminal(&io::stderr()),
    )
}

/// [`init`] with another syslog socket and console writer (tests).
pub fn init_with(
    settings: &LoggingSettings,
    syslog_socket: &Path,
    console: BoxMakeWriter,
    console_ansi: bool,
) -> Result<(), LoggingError> {
    let directives = settings.level.filter_directives();
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(console)
        .with_ansi(console_ansi)
        .with_filter(EnvFilter::new(&directives));

    let file_layer = match &settings.directory {
        Some(directory) => {
            let writer = RotatingFileWriter::open(
                directory,
                LOG_FILE_NAME,
                settings.max_file_size_mb.saturating_mul(1024 * 1024),
                settings.max_files,
            )
            .map_err(|source| LoggingError::Directory {
                directory: directory.clone(),
                source,
            })?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_ansi(false)
                    .with_filter(EnvFilter::new(&directives)),
            )
        }
        None => None,
    };

    let syslog_layer = if settings.syslog {
        let sender = SyslogSender::new(syslog_socket, SYSLOG_IDENT).map_err(|source| {
            LoggingError::Syslog {
                socket: syslog_socket.to_owned(),
                source,
            }
        })?;
        Some(syslog_layer(sender))
    } else {
        None
    };

    tracing_subscriber::registry()
        .with(stderr_layer)
        .with(file_layer)
        .with(syslog_layer)
        .try_init()
        .map_err(|e| LoggingError::AlreadyInstalled(e.to_string()))
}

/// The fmt layer that sends warnings and errors through `sender`: no time
/// (syslog adds its own), no colours, no level (the priority carries it).
pub fn syslog_layer<S>(sender: SyslogSender) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(sender)
        .with_ansi(false)
        .without_time()
        .with_level(false)
        .with_filter(tracing_subscriber::filter::LevelFilter::WARN)
}

/// A log file that is rotated by size: when a message would take the
/// current file past `max_bytes`, `NAME.(n-1)` becomes `NAME.n`, …, `NAME`
/// becomes `NAME.1`, and the oldest beyond `max_files` is dropped.
/// Messages are never split across files.
pub struct RotatingFileWriter {
    state: Mutex<RotatingState>,
}

struct RotatingState {
    directory: PathBuf,
    name: String,
    max_bytes: u64,
    max_files: usize,
    file: File,
    size: u64,
}

impl RotatingFileWriter {
    /// Opens (appends to) `directory/name`, creating the directory.
    /// `max_files` counts the current file; 0 is taken as 1.
    pub fn open(
        directory: &Path,
        name: &str,
        max_bytes: u64,
        max_files: usize,
    ) -> io::Result<RotatingFileWriter> {
        fs::create_dir_all(directory)?;
        let max_files = max_files.max(1);
        let file = open_append(&directory.join(name))?;
        let size = file.metadata()?.len();
        let state = RotatingState {
            directory: directory.to_owned(),
            name: name.to_owned(),
            max_bytes: max_bytes.max(1),
            max_files,
            file,
            size,
        };
        state.remove_beyond_limit();
        Ok(RotatingFileWriter {
            state: Mutex::new(state),
        })
    }

    /// The current log file.
    pub fn path(&self) -> PathBuf {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.directory.join(&state.name)
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

impl RotatingState {
    fn numbered(&self, n: usize) -> PathBuf {
        self.directory.join(format!("{}.{n}", self.name))
    }

    fn rotate(&mut self) -> io::Result<()> {
        let current = self.directory.join(&self.name);
        if self.max_files == 1 {
            fs::remove_file(&current)?;
        } else {
            for n in (1..self.max_files - 1).rev() {
                let from = self.numbered(n);
                if from.exists() {
                    fs::rename(&from, self.numbered(n + 1))?;
                }
            }
            fs::rename(&current, self.numbered(1))?;
        }
        self.file = open_append(&current)?;
        self.size = 0;
        Ok(())
    }

    /// Files left over from a larger `max_files`.
    fn remove_beyond_limit(&self) {
        let Ok(entries) = fs::read_dir(&self.directory) else {
            return;
        };
        let prefix = format!("{}.", self.name);
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(suffix) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            if let Ok(n) = suffix.parse::<usize>() {
                if n >= self.max_files {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }
}

impl Write for &RotatingFileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.size > 0 && state.size + buf.len() as u64 > state.max_bytes {
            // A failed rotation must not lose the message: keep appending.
            if let Err(e) = state.rotate() {
                let _ = writeln!(io::stderr(), "log file rotation failed: {e}");
            }
        }
        state.file.write_all(buf)?;
        state.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.file.flush()
    }
}

impl<'a> MakeWriter<'a> for RotatingFileWriter {
    type Writer = &'a RotatingFileWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// Sends each formatted event as one RFC 3164 datagram
/// (`<PRI>ident[pid]: message`, facility daemon) to a local syslog socket.
pub struct SyslogSender {
    socket: UnixDatagram,
    path: PathBuf,
    ident: String,
    pid: u32,
}

/// syslog facility `daemon`.
const FACILITY_DAEMON: u8 = 3;

impl SyslogSender {
    /// Checks that `path` exists; messages are sent to it later.
    pub fn new(path: &Path, ident: &str) -> io::Result<SyslogSender> {
        fs::metadata(path)?;
        Ok(SyslogSender {
            socket: UnixDatagram::unbound()?,
            path: path.to_owned(),
            ident: ident.to_owned(),
            pid: std::process::id(),
        })
    }

    fn send(&self, severity: u8, message: &[u8]) {
        let text = String::from_utf8_lossy(message);
        let datagram = format!(
            "<{}>{}[{}]: {}",
            FACILITY_DAEMON * 8 + severity,
            self.ident,
            self.pid,
            text.trim_end()
        );
        // A full or missing syslog socket must never stop the service.
        let _ = self.socket.send_to(datagram.as_bytes(), &self.path);
    }
}

/// One event being formatted for syslog; sent when dropped.
pub struct SyslogMessage<'a> {
    sender: &'a SyslogSender,
    severity: u8,
    buffer: Vec<u8>,
}

impl Write for SyslogMessage<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogMessage<'_> {
    fn drop(&mut self) {
        if !self.buffer.is_empty() {
            self.sender.send(self.severity, &self.buffer);
        }
    }
}

impl<'a> MakeWriter<'a> for SyslogSender {
    type Writer = SyslogMessage<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        self.message(6)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        // syslog severities: err 3, warning 4, notice 5, info 6, debug 7.
        let severity = match *meta.level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        self.message(severity)
    }
}

impl SyslogSender {
    fn message(&self, severity: u8) -> SyslogMessage<'_> {
        SyslogMessage {
            sender: self,
            severity,
            buffer: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn a_file_that_would_exceed_the_size_is_rotated_and_only_max_files_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let writer = RotatingFileWriter::open(dir.path(), "app.log", 100, 3).unwrap();
        // 40-byte lines: two fit in 100 bytes, the third rotates.
        for i in 0..10 {
            let line = format!("{:<38}\n", format!("line {i}"));
            assert_eq!(line.len(), 39);
            (&writer).write_all(line.as_bytes()).unwrap();
        }
        let current = read(&dir.path().join("app.log"));
        let first = read(&dir.path().join("app.log.1"));
        let second = read(&dir.path().join("app.log.2"));
        assert!(
            current.starts_with("line 8") && current.contains("line 9"),
            "{current}"
        );
        assert!(
            first.starts_with("line 6") && first.contains("line 7"),
            "{first}"
        );
        assert!(
            second.starts_with("line 4") && second.contains("line 5"),
            "{second}"
        );
        assert!(!dir.path().join("app.log.3").exists());
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["app.log", "app.log.1", "app.log.2"]);
        for name in &names {
            let size = fs::metadata(dir.path().join(name)).unwrap().len();
            assert!(size <= 100, "{name} has {size} bytes");
        }
    }

    #[test]
    fn reopening_appends_and_drops_files_beyond_a_smaller_limit() {
        let dir = tempfile::tempdir().unwrap();
        {
            let writer = RotatingFileWriter::open(dir.path(), "app.log", 10, 4).unwrap();
            for line in ["aaaaaaaa\n", "bbbbbbbb\n", "cccccccc\n", "dddddddd\n"] {
                (&writer).write_all(line.as_bytes()).unwrap();
            }
        }
        assert!(dir.path().join("app.log.3").exists());
        let writer = RotatingFileWriter::open(dir.path(), "app.log", 100, 2).unwrap();
        (&writer).write_all(b"eeee\n").unwrap();
        assert_eq!(read(&dir.path().join("app.log")), "dddddddd\neeee\n");
        assert!(dir.path().join("app.log.1").exists());
        assert!(!dir.path().join("app.log.2").exists());
        assert!(!dir.path().join("app.log.3").exists());
    }

    #[test]
    fn a_message_larger_than_the_limit_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let writer = RotatingFileWriter::open(dir.path(), "app.log", 10, 2).unwrap();
        (&writer).write_all(b"short\n").unwrap();
        (&writer).write_all(b"a much longer message\n").unwrap();
        assert_eq!(read(&dir.path().join("app.log")), "a much longer message\n");
        assert_eq!(read(&dir.path().join("app.log.1")), "short\n");
    }

    #[test]
    fn warnings_and_errors_reach_the_syslog_socket_with_their_priority() {
        let dir = tempfile::tempdir().unwrap();
        let socket_path = dir.path().join("log.sock");
        let receiver = UnixDatagram::bind(&socket_path).unwrap();
        receiver.set_nonblocking(true).unwrap();
        let sender = SyslogSender::new(&socket_path, "replicator-test").unwrap();
        let subscriber = tracing_subscriber::registry().with(syslog_layer(sender));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("routine cycle finished");
            tracing::warn!(user = "alice", "calendar could not be read");
            tracing::error!("UCServer unreachable");
        });
        let mut received = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = receiver.recv(&mut buf) {
            received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let pid = std::process::id();
        assert_eq!(received.len(), 2, "{received:?}");
        assert!(
            received[0].starts_with(&format!("<28>replicator-test[{pid}]: ")),
            "{received:?}"
        );
        assert!(
            received[0].contains("calendar could not be read"),
            "{received:?}"
        );
        assert!(received[0].contains("user=\"alice\""), "{received:?}");
        assert!(received[1].starts_with("<27>"), "{received:?}");
        assert!(
            received[1].ends_with("UCServer unreachable"),
            "{received:?}"
        );
    }

    #[test]
    fn a_missing_syslog_socket_is_reported_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let settings = LoggingSettings {
            syslog: true,
            ..LoggingSettings::default()
        };
        let console = BoxMakeWriter::new(tracing_subscriber::fmt::TestWriter::new());
        let err = init_with(
            &settings,
            &dir.path().join("no-such-socket"),
            console,
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no-such-socket"), "{err}");
        assert!(err.contains("syslog = false"), "{err}");
    }

    #[test]
    fn levels_parse_case_insensitively_and_unknown_ones_name_the_choices() {
        assert_eq!("WARN".parse::<LogLevel>().unwrap(), LogLevel::Warn);
        let err = "verbose".parse::<LogLevel>().unwrap_err();
        assert!(err.contains("error, warn, info, debug or trace"), "{err}");
    }
}
