//! Log output from `[logging]`: stderr always (each line with its syslog
//! priority when stderr is the journal), size-rotated files in a directory
//! when configured (reopened on request, for logrotate), and warnings and
//! errors to the local syslog socket (read by journald and by syslog
//! daemons) when `syslog = true` and stderr is not already the journal, as
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
use std::sync::{Arc, Mutex};

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

/// Where console output goes and how it is shown.
pub struct Console {
    pub writer: BoxMakeWriter,
    /// Colours (a terminal).
    pub ansi: bool,
    /// The output is the journal's stream (`$JOURNAL_STREAM`): each line
    /// gets its syslog priority prefix and no time (the journal adds it).
    pub journal: bool,
}

impl Console {
    /// The process's stderr.
    pub fn stderr() -> Console {
        Console {
            writer: BoxMakeWriter::new(io::stderr),
            ansi: io::IsTerminal::is_terminal(&io::stderr()),
            journal: stderr_is_journal(),
        }
    }
}

/// The log files of an installed logger, to reopen them after logrotate
/// renamed them (SIGHUP).
#[derive(Clone, Default)]
pub struct LogFiles {
    file: Option<Arc<RotatingFileWriter>>,
}

impl LogFiles {
    /// Closes the current log file and opens its path anew; `Ok(None)`
    /// when no log files are written.
    pub fn reopen(&self) -> io::Result<Option<PathBuf>> {
        match &self.file {
            Some(file) => file.reopen().map(|()| Some(file.path())),
            None => Ok(None),
        }
    }
}

/// Installs the global subscriber for `settings`: stderr (coloured on a
/// terminal, with priorities for the journal), the log files, syslog. Call
/// once, early.
pub fn init(settings: &LoggingSettings) -> Result<LogFiles, LoggingError> {
    init_with(settings, Path::new(SYSLOG_SOCKET), Console::stderr())
}

/// [`init`] with another syslog socket and console (tests).
pub fn init_with(
    settings: &LoggingSettings,
    syslog_socket: &Path,
    console: Console,
) -> Result<LogFiles, LoggingError> {
    let directives = settings.level.filter_directives();
    let stderr_layer = if console.journal {
        tracing_subscriber::fmt::layer()
            .with_writer(JournalPriorityWriter::new(console.writer))
            .with_ansi(false)
            .without_time()
            .with_filter(EnvFilter::new(&directives))
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(console.writer)
            .with_ansi(console.ansi)
            .with_filter(EnvFilter::new(&directives))
            .boxed()
    };

    let mut files = LogFiles::default();
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
            let writer = Arc::new(writer);
            files.file = Some(writer.clone());
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_ansi(false)
                    .with_filter(EnvFilter::new(&directives)),
            )
        }
        None => None,
    };

    // The journal already has every line with its priority, and journald
    // also reads /dev/log: sending there too would show each warning twice.
    let syslog_skipped = settings.syslog && console.journal;
    let syslog_layer = if settings.syslog && !syslog_skipped {
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
        .map_err(|e| LoggingError::AlreadyInstalled(e.to_string()))?;
    if syslog_skipped {
        tracing::info!(
            "[logging] syslog = true: not sending to {} as well, because stderr is the journal and carries each line's priority",
            syslog_socket.display()
        );
    }
    Ok(files)
}

/// Whether stderr is the journal's stream: `$JOURNAL_STREAM` names its
/// device and inode (systemd.exec(5), "JOURNAL_STREAM").
pub fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::MetadataExt as _;
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(metadata) = File::from(fd).metadata() else {
        return false;
    };
    value
        .to_str()
        .is_some_and(|v| journal_stream_names(v, metadata.dev(), metadata.ino()))
}

/// Whether a `$JOURNAL_STREAM` value (`DEVICE:INODE`, decimal) names the
/// file `dev`/`ino`.
pub fn journal_stream_names(value: &str, dev: u64, ino: u64) -> bool {
    value
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        == Some((dev, ino))
}

/// The syslog severity of a tracing level: err 3, warning 4, info 6,
/// debug 7 (trace too).
fn severity(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        _ => 7,
    }
}

/// Console output for the journal: each line of an event starts with its
/// syslog priority, `<4>` for a warning (the prefix sd-daemon(3) defines and
/// journald reads from a service's stdout/stderr), so `journalctl -p
/// warning` finds it.
pub struct JournalPriorityWriter {
    inner: BoxMakeWriter,
}

impl JournalPriorityWriter {
    pub fn new(inner: BoxMakeWriter) -> JournalPriorityWriter {
        JournalPriorityWriter { inner }
    }
}

/// One event being formatted for the journal; written when dropped, so its
/// lines are prefixed as a whole.
pub struct JournalLine<'a> {
    inner: Box<dyn Write + 'a>,
    severity: u8,
    buffer: Vec<u8>,
}

impl Write for JournalLine<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for JournalLine<'_> {
    fn drop(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(self.buffer.len() + 8);
        for line in self.buffer.split_inclusive(|b| *b == b'\n') {
            out.extend_from_slice(format!("<{}>", self.severity).as_bytes());
            out.extend_from_slice(line);
        }
        if out.last() != Some(&b'\n') {
            out.push(b'\n');
        }
        // stderr gone: nothing else to tell it to.
        let _ = self.inner.write_all(&out);
    }
}

impl<'a> MakeWriter<'a> for JournalPriorityWriter {
    type Writer = JournalLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        JournalLine {
            inner: Box::new(self.inner.make_writer()),
            severity: 6,
            buffer: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        JournalLine {
            inner: Box::new(self.inner.make_writer_for(meta)),
            severity: severity(*meta.level()),
            buffer: Vec::new(),
        }
    }
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

    /// Closes the current file and opens (appends to, or creates) its path
    /// anew: after logrotate renamed it, messages go to the new file.
    pub fn reopen(&self) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let file = open_append(&state.directory.join(&state.name))?;
        state.size = file.metadata()?.len();
        state.file = file;
        Ok(())
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
        self.message(severity(*meta.level()))
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

/// A log writer whose output a unit test reads back (clones share it):
/// `BoxMakeWriter::new(move || captured.clone())`.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct CapturedOutput(Arc<Mutex<Vec<u8>>>);

#[cfg(test)]
impl CapturedOutput {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[cfg(test)]
impl Write for CapturedOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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
        let console = Console {
            writer: BoxMakeWriter::new(tracing_subscriber::fmt::TestWriter::new()),
            ansi: false,
            journal: false,
        };
        let err = init_with(&settings, &dir.path().join("no-such-socket"), console)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("no-such-socket"), "{err}");
        assert!(err.contains("syslog = false"), "{err}");
    }

    #[test]
    fn a_renamed_log_file_is_replaced_by_a_new_one_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let writer = RotatingFileWriter::open(dir.path(), "app.log", 1000, 3).unwrap();
        (&writer).write_all(b"before\n").unwrap();
        // logrotate's rename, then its postrotate SIGHUP.
        fs::rename(dir.path().join("app.log"), dir.path().join("app.log-old")).unwrap();
        (&writer).write_all(b"still old\n").unwrap();
        writer.reopen().unwrap();
        (&writer).write_all(b"after\n").unwrap();
        assert_eq!(read(&dir.path().join("app.log-old")), "before\nstill old\n");
        assert_eq!(read(&dir.path().join("app.log")), "after\n");
    }

    #[test]
    fn journal_lines_carry_their_syslog_priority_on_every_line() {
        let captured = CapturedOutput::default();
        let sink = captured.clone();
        let writer = JournalPriorityWriter::new(BoxMakeWriter::new(move || sink.clone()));
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .without_time()
                .with_filter(tracing_subscriber::filter::LevelFilter::DEBUG),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!("UCServer unreachable");
            tracing::warn!("mailbox not found");
            tracing::info!("cycle finished");
            tracing::debug!("detail");
            tracing::warn!("first line\nsecond line");
        });
        let text = captured.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        for (line, (priority, words)) in lines.iter().zip([
            ("<3>", "UCServer unreachable"),
            ("<4>", "mailbox not found"),
            ("<6>", "cycle finished"),
            ("<7>", "detail"),
            ("<4>", "first line"),
            ("<4>", "second line"),
        ]) {
            assert!(
                line.starts_with(priority),
                "{line:?} starts with {priority}"
            );
            assert!(line.contains(words), "{line:?}");
        }
    }

    #[test]
    fn journal_stream_names_the_device_and_inode() {
        assert!(journal_stream_names("8:1234", 8, 1234));
        assert!(!journal_stream_names("8:1234", 8, 1235));
        assert!(!journal_stream_names("9:1234", 8, 1234));
        assert!(!journal_stream_names("", 8, 1234));
        assert!(!journal_stream_names("8-1234", 8, 1234));
    }

    #[test]
    fn levels_parse_case_insensitively_and_unknown_ones_name_the_choices() {
        assert_eq!("WARN".parse::<LogLevel>().unwrap(), LogLevel::Warn);
        let err = "verbose".parse::<LogLevel>().unwrap_err();
        assert!(err.contains("error, warn, info, debug or trace"), "{err}");
    }
}
