//! `ews-calendar-replicator sim ucserver` runs standalone: the client lists
//! its offline users and writes appointments to it, over a real socket.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use chrono::{TimeZone, Utc};
use ews_calendar_replicator::ucserver::{
    Appointment, AppointmentStatus, Importance, Sensitivity, UcServerClient, UcServerSettings,
};

/// Kills the simulator when the test ends, however it ends.
struct Running(std::process::Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_simulator_command_serves_a_client() {
    let mut child = Command::new(crate::support::lab::BIN)
        .args([
            "sim",
            "ucserver",
            "--listen",
            "127.0.0.1:0",
            "--users",
            "30",
        ])
        .args(["--admin-password", "S1m-admin"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a first line").unwrap();
    let url = first
        .strip_prefix("simulated UCServer at ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();

    let settings = UcServerSettings::new(url.parse().unwrap(), "ucadmin", "S1m-admin");
    let client = UcServerClient::connect(settings)
        .await
        .expect("session and admin login");
    let offline = client.offline_users().await.unwrap();
    let all = client.all_users().await.unwrap();
    assert!(
        !offline.is_empty() && offline.len() < all.len(),
        "{} of {}",
        offline.len(),
        all.len()
    );

    let owner = offline[0].user_name.clone();
    let start = Utc.with_ymd_and_hms(2026, 2, 10, 9, 0, 0).unwrap();
    let appointment = Appointment {
        entry_id: "cli-test-1".into(),
        start,
        end: start + chrono::Duration::hours(1),
        subject: Some("Planning".into()),
        location: None,
        all_day: false,
        status: AppointmentStatus::Busy,
        sensitivity: Sensitivity::Normal,
        importance: Importance::Normal,
    };
    client
        .set_appointments(&owner, &[appointment])
        .await
        .expect("the write is accepted");
}

#[tokio::test]
async fn the_simulator_command_serves_the_native_port_with_native_listen() {
    let mut child = Command::new(crate::support::lab::BIN)
        .args(["sim", "ucserver", "--listen", "127.0.0.1:0"])
        .args(["--native-listen", "127.0.0.1:0", "--users", "10"])
        .args(["--admin-password", "S1m-admin"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let mut lines = BufReader::new(stdout).lines();
    lines.next().expect("a first line").unwrap();
    let second = lines.next().expect("a second line").unwrap();
    let url = second
        .strip_prefix("native port (ROSE over TCP) at ")
        .unwrap_or_else(|| panic!("unexpected second line {second:?}"))
        .to_owned();
    assert!(url.starts_with("tcp://127.0.0.1:"), "{url}");
    let settings = UcServerSettings::new(url.parse().unwrap(), "ucadmin", "S1m-admin");
    let client = UcServerClient::connect(settings)
        .await
        .expect("native logon and admin login");
    assert!(!client.all_users().await.unwrap().is_empty());
}
