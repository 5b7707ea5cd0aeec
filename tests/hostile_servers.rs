//! Issue #15: servers that lie, on loopback. A directory server may not make
//! the replicator buffer what it announces (one 4 GiB LDAP message) or
//! gather every entry it sends: both stop at a limit, with an error naming
//! the setting that raises it.
//!
//! The LDAP servers here are raw TCP listeners speaking just enough BER
//! (RFC 4511) to get past the bind.
#![cfg(feature = "directory")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ews_calendar_replicator::directory::{AdDirectory, DirectoryError, DirectorySettings, Secret};

// --- just enough BER ---------------------------------------------------------

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn integer(value: u32) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    if bytes[skip] & 0x80 != 0 {
        skip -= 1;
    }
    tlv(0x02, &bytes[skip..])
}

fn octets(text: &str) -> Vec<u8> {
    tlv(0x04, text.as_bytes())
}

fn message(id: u32, op: Vec<u8>) -> Vec<u8> {
    tlv(0x30, &[integer(id), op].concat())
}

/// An LDAPResult with resultCode success, for `tag` (BindResponse,
/// SearchResultDone).
fn success(tag: u8) -> Vec<u8> {
    tlv(tag, &[tlv(0x0a, &[0]), octets(""), octets("")].concat())
}

fn entry(dn: &str, attributes: &[(&str, &str)]) -> Vec<u8> {
    let attributes: Vec<u8> = attributes
        .iter()
        .flat_map(|(name, value)| tlv(0x30, &[octets(name), tlv(0x31, &octets(value))].concat()))
        .collect();
    tlv(0x64, &[octets(dn), tlv(0x30, &attributes)].concat())
}

/// Reads one LDAPMessage: its id, protocolOp tag and the op's content.
fn read_request(stream: &mut TcpStream) -> Option<(u32, u8, Vec<u8>)> {
    fn read_tlv(bytes: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = bytes[0];
        let (len, header) = if bytes[1] < 0x80 {
            (bytes[1] as usize, 2)
        } else {
            let n = (bytes[1] & 0x7f) as usize;
            let len = bytes[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| acc << 8 | *b as usize);
            (len, 2 + n)
        };
        (tag, &bytes[header..header + len], &bytes[header + len..])
    }
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).ok()?;
    let mut length_bytes = Vec::new();
    let len = if head[1] < 0x80 {
        head[1] as usize
    } else {
        length_bytes.resize((head[1] & 0x7f) as usize, 0);
        stream.read_exact(&mut length_bytes).ok()?;
        length_bytes
            .iter()
            .fold(0usize, |acc, b| acc << 8 | *b as usize)
    };
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    let (_, id, rest) = read_tlv(&body);
    let id = id.iter().fold(0u32, |acc, b| acc << 8 | *b as u32);
    let (op, content, _) = read_tlv(rest);
    Some((id, op, content.to_vec()))
}

/// A server on loopback; each connection is served by `serve` on its own
/// thread. Returns the URL.
fn server(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ldap://{}", listener.local_addr().unwrap());
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let serve = serve.clone();
            std::thread::spawn(move || serve(stream));
        }
    });
    url
}

/// Answers binds and the RootDSE read; `search` answers any other search.
fn directory_server(search: impl Fn(&mut TcpStream, u32) + Send + Sync + 'static) -> String {
    server(move |mut stream| {
        while let Some((id, op, content)) = read_request(&mut stream) {
            match op {
                // BindRequest
                0x60 => {
                    let _ = stream.write_all(&message(id, success(0x61)));
                }
                // SearchRequest: the RootDSE has the empty base.
                0x63 if content.starts_with(&[0x04, 0x00]) => {
                    let root = entry(
                        "",
                        &[
                            ("defaultNamingContext", "DC=corp,DC=example,DC=com"),
                            (
                                "configurationNamingContext",
                                "CN=Configuration,DC=corp,DC=example,DC=com",
                            ),
                        ],
                    );
                    let _ = stream.write_all(&message(id, root));
                    let _ = stream.write_all(&message(id, success(0x65)));
                }
                0x63 => search(&mut stream, id),
                // UnbindRequest
                0x42 => return,
                _ => {}
            }
        }
    })
}

fn settings(url: &str) -> DirectorySettings {
    let mut settings = DirectorySettings::new(
        url,
        "svc-replicator@corp.example.com",
        Secret::new("bind-password"),
    );
    settings.timeout = Duration::from_secs(20);
    settings
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn an_announced_4_gib_ldap_message_is_cut_at_max_response_mb() {
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let url = directory_server(move |stream, _| {
        // A SEQUENCE announcing 4 GiB - 1, then filler for as long as the
        // client reads (at most 256 MB, so the old code's test ends too).
        let mut header = vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x02];
        header.resize(64 * 1024, 0x04);
        let chunk = vec![0x04u8; 64 * 1024];
        if stream.write_all(&header).is_err() {
            return;
        }
        counter.fetch_add(header.len() as u64, Ordering::SeqCst);
        for _ in 0..(256 * 16) {
            if stream.write_all(&chunk).is_err() {
                return;
            }
            counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
    });
    let mut settings = settings(&url);
    settings.max_response_mb = 4;
    let directory = AdDirectory::connect(settings).await.unwrap();
    let err = directory.read_users().await.unwrap_err();
    assert!(
        matches!(
            &err,
            DirectoryError::ResponseTooLarge { limit_mb: 4, operation, .. } if operation == "user search"
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("directory.max_response_mb"),
        "{err}"
    );
    // What the server got rid of: the limit, plus what the loopback socket
    // buffers hold (a few MB); far from the 256 MB offered.
    let sent_mb = sent.load(Ordering::SeqCst) as f64 / (1 << 20) as f64;
    assert!(sent_mb < 4.0 + 32.0, "the server sent {sent_mb:.1} MB");
    eprintln!(
        "hostile LDAP message: the server sent {sent_mb:.1} MB before the connection closed; peak RSS of this test process {} MB",
        peak_rss_kb() / 1024
    );
}

#[tokio::test]
async fn a_search_returning_more_than_max_entries_stops_with_an_error_naming_the_setting() {
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let url = directory_server(move |stream, id| {
        for i in 0..5_000u32 {
            let user = entry(
                &format!("CN=User {i},OU=Staff,DC=corp,DC=example,DC=com"),
                &[("sAMAccountName", &format!("user{i}"))],
            );
            if stream.write_all(&message(id, user)).is_err() {
                return;
            }
            counter.fetch_add(1, Ordering::SeqCst);
        }
        let _ = stream.write_all(&message(id, success(0x65)));
    });
    let mut settings = settings(&url);
    settings.max_entries = 100;
    let directory = AdDirectory::connect(settings).await.unwrap();
    let err = directory.read_users().await.unwrap_err();
    assert!(
        matches!(
            &err,
            DirectoryError::TooManyEntries { limit: 100, operation, .. } if operation == "user search"
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("directory.max_entries"), "{err}");
}
