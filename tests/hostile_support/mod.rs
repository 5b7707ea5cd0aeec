//! Servers that lie (issue #15), on loopback: shared by the `hostile_*`
//! tests and by `examples/hostile_server.rs`, which
//! `scripts/hostile-figures.sh` runs against the release binary.
//!
//! Every server counts what it got out: the bytes (or LDAP entries) the
//! kernel accepted from it. That is what the client read plus what the
//! loopback socket buffers still held when the client hung up (a few MB).
//! The servers are plain threads on std sockets, so that they run the same
//! in a test and in the example.
#![allow(dead_code)] // each user takes only some of the servers

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a server got out, shared with whoever started it.
#[derive(Clone, Default)]
pub struct Sent(Arc<AtomicU64>);

impl Sent {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::SeqCst);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A listener on 127.0.0.1; each connection is served by `serve` on its own
/// thread.
pub fn serve(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let serve = serve.clone();
            std::thread::spawn(move || serve(stream));
        }
    });
    addr
}

/// Writes `chunk` until `limit` bytes are out or the client hung up;
/// counts what went out in `sent`. Returns whether the client is still
/// there.
fn write_repeatedly(stream: &mut TcpStream, chunk: &[u8], limit: u64, sent: &Sent) -> bool {
    let mut written = 0u64;
    while written < limit {
        if stream.write_all(chunk).is_err() {
            return false;
        }
        written += chunk.len() as u64;
        sent.add(chunk.len() as u64);
    }
    true
}

/// Waits until the client hangs up (so that it, not the server, ends the
/// connection).
fn until_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    while stream.read(&mut buf).is_ok_and(|n| n > 0) {}
}

// --- LDAP: just enough BER (RFC 4511) to get past the bind --------------------

pub mod ber {
    use std::io::Read;
    use std::net::TcpStream;

    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
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

    pub fn integer(value: u32) -> Vec<u8> {
        let bytes = value.to_be_bytes();
        let mut skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
        if bytes[skip] & 0x80 != 0 {
            skip -= 1;
        }
        tlv(0x02, &bytes[skip..])
    }

    pub fn octets(text: impl AsRef<[u8]>) -> Vec<u8> {
        tlv(0x04, text.as_ref())
    }

    pub fn message(id: u32, op: Vec<u8>) -> Vec<u8> {
        tlv(0x30, &[integer(id), op].concat())
    }

    /// An LDAPResult with resultCode success, for `tag` (BindResponse,
    /// SearchResultDone).
    pub fn success(tag: u8) -> Vec<u8> {
        tlv(tag, &[tlv(0x0a, &[0]), octets(""), octets("")].concat())
    }

    pub fn entry(dn: &str, attributes: &[(&str, &[u8])]) -> Vec<u8> {
        let attributes: Vec<u8> = attributes
            .iter()
            .flat_map(|(name, value)| {
                tlv(0x30, &[octets(name), tlv(0x31, &octets(value))].concat())
            })
            .collect();
        tlv(0x64, &[octets(dn), tlv(0x30, &attributes)].concat())
    }

    /// Reads one LDAPMessage: its id, protocolOp tag and the op's content.
    pub fn read_request(stream: &mut TcpStream) -> Option<(u32, u8, Vec<u8>)> {
        fn read_tlv(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
            let tag = *bytes.first()?;
            let first = *bytes.get(1)?;
            let (len, header) = if first < 0x80 {
                (first as usize, 2)
            } else {
                let n = (first & 0x7f) as usize;
                let len = bytes
                    .get(2..2 + n)?
                    .iter()
                    .fold(0usize, |acc, b| acc << 8 | *b as usize);
                (len, 2 + n)
            };
            Some((
                tag,
                bytes.get(header..header + len)?,
                &bytes[header + len..],
            ))
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
        // A request is small; anything else is not the replicator.
        if len > 1 << 20 {
            return None;
        }
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).ok()?;
        let (_, id, rest) = read_tlv(&body)?;
        let id = id.iter().fold(0u32, |acc, b| acc << 8 | *b as u32);
        let (op, content, _) = read_tlv(rest)?;
        Some((id, op, content.to_vec()))
    }
}

/// The base DN the hostile directories publish.
pub const LDAP_BASE_DN: &str = "DC=corp,DC=example,DC=com";

/// An LDAP server that answers binds and the RootDSE read; `search`
/// answers every other search (its message id given).
pub fn ldap_server(search: impl Fn(&mut TcpStream, u32) + Send + Sync + 'static) -> SocketAddr {
    use ber::*;
    serve(move |mut stream| {
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
                            ("defaultNamingContext", LDAP_BASE_DN.as_bytes()),
                            (
                                "configurationNamingContext",
                                b"CN=Configuration,DC=corp,DC=example,DC=com",
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

/// Answers the user search with one LDAPMessage announcing 4 GiB - 1, then
/// filler for as long as the client reads, up to `offer` bytes (so that a
/// client without a limit ends too). Counts bytes in `sent`.
pub fn ldap_announcing_4_gib(offer: u64, sent: Sent) -> SocketAddr {
    ldap_server(move |stream, _| {
        let mut header = vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x02];
        header.resize(64 * 1024, 0x04);
        if stream.write_all(&header).is_err() {
            return;
        }
        sent.add(header.len() as u64);
        write_repeatedly(stream, &[0x04u8; 64 * 1024], offer, &sent);
    })
}

/// A user entry as AD sends it: objectGUID (16 bytes), sAMAccountName and
/// mail, under `dn`.
pub fn user_entry(dn: &str, number: u64) -> Vec<u8> {
    let mut guid = [0x5au8; 16];
    guid[..8].copy_from_slice(&number.to_le_bytes());
    ber::entry(
        dn,
        &[
            ("objectGUID", &guid),
            ("sAMAccountName", format!("user{number}").as_bytes()),
            ("mail", format!("user{number}@corp.example.com").as_bytes()),
        ],
    )
}

/// Answers the user search with `count` user entries and then
/// SearchResultDone; counts the entries got out in `sent`.
pub fn ldap_sending_entries(count: u64, sent: Sent) -> SocketAddr {
    use ber::*;
    ldap_server(move |stream, id| {
        for i in 0..count {
            let user = user_entry(&format!("CN=User {i},OU=Staff,{LDAP_BASE_DN}"), i);
            if stream.write_all(&message(id, user)).is_err() {
                return;
            }
            sent.add(1);
        }
        let _ = stream.write_all(&message(id, success(0x65)));
    })
}

/// Answers every search with one user entry under the search's own base
/// (whatever DN was asked for), and counts the searches in `searches`.
pub fn ldap_finding_anything(searches: Sent) -> SocketAddr {
    use ber::*;
    ldap_server(move |stream, id| {
        searches.add(1);
        let user = user_entry("CN=Found,OU=Anywhere,DC=example,DC=com", 1);
        let _ = stream.write_all(&message(id, user));
        let _ = stream.write_all(&message(id, success(0x65)));
    })
}

// --- HTTP ----------------------------------------------------------------------

/// Reads one request (head, and a body by Content-Length); `None` when the
/// client hung up. Returns the request's body length.
fn read_http_request(stream: &mut TcpStream) -> Option<usize> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length.min(16 << 20)];
    stream.read_exact(&mut body).ok()?;
    Some(length)
}

/// An HTTP/1.1 server: a request without a body (the EWS client's NTLM
/// probe) gets an empty 200, so the client sends its real request without
/// authentication; a request with a body gets `answer`.
fn http_server(answer: impl Fn(&mut TcpStream) + Send + Sync + 'static) -> SocketAddr {
    serve(move |mut stream| {
        while let Some(length) = read_http_request(&mut stream) {
            if length == 0 {
                let empty = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                if stream.write_all(empty).is_err() {
                    return;
                }
                continue;
            }
            answer(&mut stream);
        }
    })
}

/// A 200 whose chunked body never ends (it starts like a createsession
/// answer), up to `offer` bytes; then it waits for the client to hang up.
pub fn http_endless_chunked(offer: u64, sent: Sent) -> SocketAddr {
    http_server(move |stream| {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\ne\r\n{\"sessionid\":\"\r\n";
        if stream.write_all(head).is_err() {
            return;
        }
        let chunk = format!("1000\r\n{}\r\n", "A".repeat(0x1000));
        if write_repeatedly(stream, chunk.as_bytes(), offer, &sent) {
            until_closed(stream);
        }
    })
}

/// A GetUserAvailability response answering `count` mailboxes, each with
/// an error and three open-content values (as
/// `tests/fixtures/ews/gua_mailbox_errors.xml`).
pub fn error_answers(count: usize) -> Vec<u8> {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetUserAvailabilityResponse xmlns="http://schemas.microsoft.com/exchange/services/2006/messages"><FreeBusyResponseArray>"#,
    );
    for i in 0..count {
        xml.push_str(&format!(
            r#"<FreeBusyResponse><ResponseMessage ResponseClass="Error"><MessageText>The requesting account does not have permission to read free/busy information of user{i}@corp.example.com.</MessageText><ResponseCode>ErrorNoFreeBusyAccess</ResponseCode><DescriptiveLinkKey>0</DescriptiveLinkKey><MessageXml><ExceptionType xmlns="http://schemas.microsoft.com/exchange/services/2006/errors">Microsoft.Exchange.InfoWorker.Common.Availability.NoFreeBusyAccessException</ExceptionType><ExceptionCode xmlns="http://schemas.microsoft.com/exchange/services/2006/errors">5016</ExceptionCode><ExceptionServerName xmlns="http://schemas.microsoft.com/exchange/services/2006/errors">EXMBX0{}</ExceptionServerName></MessageXml></ResponseMessage><FreeBusyView><FreeBusyViewType xmlns="http://schemas.microsoft.com/exchange/services/2006/types">None</FreeBusyViewType></FreeBusyView></FreeBusyResponse>"#,
            i % 10
        ));
    }
    xml.push_str("</FreeBusyResponseArray></GetUserAvailabilityResponse></s:Body></s:Envelope>");
    xml.into_bytes()
}

/// [`error_answers`] of about `megabytes` MB, and its answer count.
pub fn error_answers_of(megabytes: usize) -> (Vec<u8>, usize) {
    // One answer's bytes, without the envelope around them all.
    let per_answer = error_answers(2).len() - error_answers(1).len();
    let count = megabytes * 1_000_000 / per_answer;
    (error_answers(count), count)
}

/// An Exchange that answers every availability request with `body`
/// (`status`, XML), whatever was asked.
pub fn ews_answering(status: &'static str, body: Vec<u8>, sent: Sent) -> SocketAddr {
    http_server(move |stream| {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        // In pieces, so that what a client that hangs up early took is
        // counted, not the whole body.
        for piece in body.chunks(64 * 1024) {
            if stream.write_all(piece).is_err() {
                return;
            }
            sent.add(piece.len() as u64);
        }
    })
}

/// An Exchange error body that would forge a log line and drive a terminal:
/// ESC sequences (clear screen, set the title), a bell, CR LF and a line
/// that looks like the replicator's own log.
pub const FORGED_LOG_LINE: &str =
    "2026-12-04T00:00:00.000000Z ERROR ews_calendar_replicator: forged";

pub fn escape_text_body() -> Vec<u8> {
    format!("\u{1b}[2J\u{1b}]0;pwned\u{7}boom\u{1b}[0m\r\n{FORGED_LOG_LINE}\n").into_bytes()
}
