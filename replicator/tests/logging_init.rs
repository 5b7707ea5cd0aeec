//! `logging::init` installs the process-wide subscriber, so it gets its own
//! test binary: one test, the whole set-up from `[logging]`.

use std::fs;
use std::os::unix::net::UnixDatagram;

use ews_calendar_replicator::logging::{self, Console, LogLevel, LoggingSettings, LOG_FILE_NAME};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

#[test]
fn init_writes_rotated_log_files_and_sends_warnings_to_syslog() {
    let dir = tempfile::tempdir().unwrap();
    let syslog_path = dir.path().join("dev-log");
    let syslog = UnixDatagram::bind(&syslog_path).unwrap();
    syslog.set_nonblocking(true).unwrap();
    let log_dir = dir.path().join("logs");
    let settings = LoggingSettings {
        level: LogLevel::Info,
        directory: Some(log_dir.clone()),
        max_file_size_mb: 1,
        max_files: 2,
        syslog: true,
    };
    // The console output goes through the test harness's capture.
    let console = Console {
        writer: BoxMakeWriter::new(tracing_subscriber::fmt::TestWriter::new()),
        ansi: false,
        journal: false,
    };
    let files = logging::init_with(&settings, &syslog_path, console).unwrap();

    tracing::debug!("below the configured level");
    tracing::info!(users = 12, "cycle finished");
    tracing::warn!("mailbox bob@example.com not found");
    // 1.5 MB of messages: the file is rotated once, and only two files stay.
    let filler = "x".repeat(1000);
    for i in 0..1500 {
        tracing::info!(i, "{filler}");
    }

    let current = fs::read_to_string(log_dir.join(LOG_FILE_NAME)).unwrap();
    let rotated = fs::read_to_string(log_dir.join(format!("{LOG_FILE_NAME}.1"))).unwrap();
    assert!(
        rotated.contains("cycle finished users=12"),
        "{}",
        &rotated[..300]
    );
    assert!(rotated.contains("mailbox bob@example.com not found"));
    assert!(!rotated.contains("below the configured level"));
    assert!(current.contains("i=1499"));
    assert!(!log_dir.join(format!("{LOG_FILE_NAME}.2")).exists());
    assert!(rotated.len() <= 1024 * 1024 && current.len() <= 1024 * 1024);

    let mut buf = [0u8; 4096];
    let n = syslog.recv(&mut buf).unwrap();
    let datagram = String::from_utf8_lossy(&buf[..n]);
    assert!(
        datagram.starts_with("<28>ews-calendar-replicator["),
        "{datagram}"
    );
    assert!(
        datagram.ends_with("mailbox bob@example.com not found"),
        "{datagram}"
    );
    assert!(
        syslog.recv(&mut buf).is_err(),
        "only the warning goes to syslog"
    );

    // logrotate renames the files and sends SIGHUP: the service reopens.
    let renamed = log_dir.join(format!("{LOG_FILE_NAME}-rotated"));
    fs::rename(log_dir.join(LOG_FILE_NAME), &renamed).unwrap();
    assert_eq!(files.reopen().unwrap(), Some(log_dir.join(LOG_FILE_NAME)));
    tracing::info!("after the reopen");
    let reopened = fs::read_to_string(log_dir.join(LOG_FILE_NAME)).unwrap();
    assert!(reopened.contains("after the reopen"), "{reopened}");
    assert!(!fs::read_to_string(&renamed)
        .unwrap()
        .contains("after the reopen"));
}
