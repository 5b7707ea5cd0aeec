//! The last autodiscover step: the `_autodiscover._tcp.<domain>` SRV record
//! (RFC 2782). A small trait, so the search does not depend on how DNS is
//! asked, and [`UdpSrvResolver`], a minimal DNS client over UDP (RFC 1035)
//! that asks the configured or the system's name servers.
//!
//! Plain UDP DNS is easy to forge, so an answer counts only when it comes
//! from the server asked (a connected socket), carries the query's random
//! id, repeats the question, and its records are owned by the name asked
//! (or a CNAME the answer leads to from it) in class IN. Even a forged
//! record cannot get the credentials: autodiscover sends them only to
//! trusted hosts (`super::trust`).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use tokio::net::UdpSocket;

/// One SRV answer: where an autodiscover service runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// Host name, without the trailing dot.
    pub target: String,
}

/// Why an SRV lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum SrvError {
    #[error("no name server configured (none given and none in {path})")]
    NoNameServer { path: String },
    #[error("cannot read {path}: {source}")]
    ResolvConf {
        path: String,
        source: std::io::Error,
    },
    #[error("DNS query to {server} failed: {source}")]
    Io {
        server: SocketAddr,
        source: std::io::Error,
    },
    #[error("no DNS answer from {servers} within {timeout:?}")]
    Timeout { servers: String, timeout: Duration },
    #[error("the DNS answer from {server} is malformed: {reason}")]
    Malformed { server: SocketAddr, reason: String },
    #[error("the DNS server {server} answered with error code {rcode} ({meaning})")]
    ServerError {
        server: SocketAddr,
        rcode: u8,
        meaning: &'static str,
    },
    #[error("the name {0:?} cannot be put in a DNS query")]
    InvalidName(String),
    #[error("cannot read a random DNS query id from /dev/urandom: {0}")]
    Random(std::io::Error),
}

/// Looks up SRV records.
pub trait SrvResolver: Send + Sync {
    /// The records of `name` (e.g. `_autodiscover._tcp.example.com`), in
    /// the order to try them; an empty list when the name does not exist.
    fn lookup_srv(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Vec<SrvRecord>, SrvError>> + Send;
}

/// Stands for "no SRV lookup configured"; never constructed.
#[derive(Debug, Clone, Copy)]
pub enum NoSrv {}

impl SrvResolver for NoSrv {
    async fn lookup_srv(&self, _name: &str) -> Result<Vec<SrvRecord>, SrvError> {
        match *self {}
    }
}

/// Asks name servers over UDP, one after the other until one answers.
#[derive(Debug, Clone)]
pub struct UdpSrvResolver {
    servers: Vec<SocketAddr>,
    timeout: Duration,
}

const RESOLV_CONF: &str = "/etc/resolv.conf";
const TYPE_SRV: u16 = 33;
const TYPE_CNAME: u16 = 5;
const CLASS_IN: u16 = 1;

impl UdpSrvResolver {
    /// Asks `servers`, waiting `timeout` for each.
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration) -> Self {
        UdpSrvResolver { servers, timeout }
    }

    /// The `nameserver` lines of `/etc/resolv.conf`.
    pub fn from_system(timeout: Duration) -> Result<Self, SrvError> {
        Self::from_resolv_conf(Path::new(RESOLV_CONF), timeout)
    }

    pub fn from_resolv_conf(path: &Path, timeout: Duration) -> Result<Self, SrvError> {
        let text = std::fs::read_to_string(path).map_err(|source| SrvError::ResolvConf {
            path: path.display().to_string(),
            source,
        })?;
        let servers: Vec<SocketAddr> = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix("nameserver"))
            .filter_map(|rest| rest.trim().parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
            .collect();
        if servers.is_empty() {
            return Err(SrvError::NoNameServer {
                path: path.display().to_string(),
            });
        }
        Ok(Self::new(servers, timeout))
    }

    async fn ask(&self, server: SocketAddr, query: &[u8], id: u16) -> Result<Vec<u8>, SrvError> {
        let io = |source| SrvError::Io { server, source };
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let socket = UdpSocket::bind(bind).await.map_err(io)?;
        socket.connect(server).await.map_err(io)?;
        socket.send(query).await.map_err(io)?;
        let mut buffer = vec![0u8; 4096];
        loop {
            let n = socket.recv(&mut buffer).await.map_err(io)?;
            // Ignore stray datagrams that answer some other query.
            if n >= 2 && u16::from_be_bytes([buffer[0], buffer[1]]) == id {
                buffer.truncate(n);
                return Ok(buffer);
            }
        }
    }
}

impl SrvResolver for UdpSrvResolver {
    async fn lookup_srv(&self, name: &str) -> Result<Vec<SrvRecord>, SrvError> {
        if self.servers.is_empty() {
            return Err(SrvError::NoNameServer {
                path: "the resolver's settings".into(),
            });
        }
        let id = query_id().map_err(SrvError::Random)?;
        let query = encode_query(id, name)?;
        for server in &self.servers {
            match tokio::time::timeout(self.timeout, self.ask(*server, &query, id)).await {
                Ok(Ok(answer)) => {
                    let mut records = parse_answer(&answer, *server, name)?;
                    order(&mut records);
                    return Ok(records);
                }
                // Unreachable or silent: the next server may answer.
                Ok(Err(SrvError::Io { .. })) | Err(_) => continue,
                Ok(Err(e)) => return Err(e),
            }
        }
        Err(SrvError::Timeout {
            servers: self
                .servers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            timeout: self.timeout,
        })
    }
}

/// RFC 2782 order: lowest priority first; within one priority the higher
/// weight first (a deterministic stand-in for the weighted random choice).
pub fn order(records: &mut [SrvRecord]) {
    records.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
}

/// A transaction id from the kernel's random source: together with the
/// random source port it is what an off-path forger has to guess.
fn query_id() -> std::io::Result<u16> {
    use std::io::Read as _;
    let mut bytes = [0u8; 2];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(u16::from_be_bytes(bytes))
}

/// Names compare as DNS does: ASCII case-insensitive, without the root dot.
fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// A standard query (recursion desired) for `name`'s SRV records.
pub fn encode_query(id: u16, name: &str) -> Result<Vec<u8>, SrvError> {
    let mut query = Vec::with_capacity(64);
    query.extend_from_slice(&id.to_be_bytes());
    query.extend_from_slice(&[0x01, 0x00]); // RD
    query.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // 1 question
    encode_name(&mut query, name)?;
    query.extend_from_slice(&TYPE_SRV.to_be_bytes());
    query.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(query)
}

/// Appends `name` as DNS labels.
pub fn encode_name(out: &mut Vec<u8>, name: &str) -> Result<(), SrvError> {
    let invalid = || SrvError::InvalidName(name.to_owned());
    let trimmed = name.trim_end_matches('.');
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(invalid());
    }
    for label in trimmed.split('.') {
        if label.is_empty() || label.len() > 63 || !label.is_ascii() {
            return Err(invalid());
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Ok(())
}

/// Reads a possibly compressed name at `*pos`, moving `*pos` past it.
pub fn read_name(message: &[u8], pos: &mut usize) -> Result<String, String> {
    let mut labels: Vec<String> = Vec::new();
    let mut cursor = *pos;
    let mut jumped = false;
    // Each pointer must go backwards, so a loop of pointers ends.
    let mut limit = cursor;
    loop {
        let len = *message.get(cursor).ok_or("name runs past the end")? as usize;
        if len == 0 {
            if !jumped {
                *pos = cursor + 1;
            }
            return Ok(labels.join("."));
        }
        if len & 0xC0 == 0xC0 {
            let low = *message.get(cursor + 1).ok_or("pointer runs past the end")? as usize;
            let target = ((len & 0x3F) << 8) | low;
            if target >= limit {
                return Err("compression pointer does not point backwards".into());
            }
            if !jumped {
                *pos = cursor + 2;
            }
            jumped = true;
            limit = target;
            cursor = target;
            continue;
        }
        if len > 63 {
            return Err(format!("label length {len} is not allowed"));
        }
        let label = message
            .get(cursor + 1..cursor + 1 + len)
            .ok_or("label runs past the end")?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        cursor += 1 + len;
    }
}

fn read_u16(message: &[u8], pos: &mut usize) -> Result<u16, String> {
    let bytes = message
        .get(*pos..*pos + 2)
        .ok_or("record runs past the end")?;
    *pos += 2;
    Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
}

/// The SRV records of `asked` in `message`, the answer to our query for it.
pub fn parse_answer(
    message: &[u8],
    server: SocketAddr,
    asked: &str,
) -> Result<Vec<SrvRecord>, SrvError> {
    let malformed = |reason: String| SrvError::Malformed { server, reason };
    if message.len() < 12 {
        return Err(malformed("shorter than a DNS header".into()));
    }
    let flags = u16::from_be_bytes([message[2], message[3]]);
    if flags & 0x8000 == 0 {
        return Err(malformed("not a response".into()));
    }
    if flags & 0x0200 != 0 {
        return Err(malformed(
            "the answer was truncated (too large for UDP; DNS over TCP is not supported)".into(),
        ));
    }
    let rcode = (flags & 0x000F) as u8;
    match rcode {
        // NXDOMAIN: the record does not exist, which is an answer (once
        // the question is checked below).
        0 | 3 => {}
        _ => {
            return Err(SrvError::ServerError {
                server,
                rcode,
                meaning: match rcode {
                    1 => "format error",
                    2 => "server failure",
                    4 => "not implemented",
                    5 => "refused",
                    _ => "other",
                },
            })
        }
    }
    let questions = u16::from_be_bytes([message[4], message[5]]);
    let answers = u16::from_be_bytes([message[6], message[7]]);
    // The question must come back as asked: an answer to another question
    // (a forgery, or a confused server) says nothing about this name.
    if questions != 1 {
        return Err(malformed(format!(
            "it repeats {questions} questions instead of the one asked"
        )));
    }
    let mut pos = 12;
    let question = read_name(message, &mut pos).map_err(malformed)?;
    let qtype = read_u16(message, &mut pos).map_err(malformed)?;
    let qclass = read_u16(message, &mut pos).map_err(malformed)?;
    if !same_name(&question, asked) || qtype != TYPE_SRV || qclass != CLASS_IN {
        return Err(malformed(format!(
            "it answers another question ({:?} type {qtype} class {qclass}, not {:?} SRV IN)",
            crate::server_text::sanitize(&question),
            asked.trim_end_matches('.')
        )));
    }
    if rcode == 3 {
        return Ok(Vec::new());
    }
    // Names whose records belong to the answer: the question and the CNAME
    // targets reached from it.
    let mut owners = vec![question];
    let mut records = Vec::new();
    for _ in 0..answers {
        let owner = read_name(message, &mut pos).map_err(malformed)?;
        let rtype = read_u16(message, &mut pos).map_err(malformed)?;
        let class = read_u16(message, &mut pos).map_err(malformed)?;
        pos += 4; // TTL
        let length = read_u16(message, &mut pos).map_err(malformed)? as usize;
        let end = pos + length;
        if end > message.len() {
            return Err(malformed("record data runs past the end".into()));
        }
        let owned = class == CLASS_IN && owners.iter().any(|name| same_name(name, &owner));
        if owned && rtype == TYPE_CNAME {
            let mut data = pos;
            owners.push(read_name(message, &mut data).map_err(malformed)?);
        } else if owned && rtype == TYPE_SRV {
            let mut data = pos;
            let priority = read_u16(message, &mut data).map_err(malformed)?;
            let weight = read_u16(message, &mut data).map_err(malformed)?;
            let port = read_u16(message, &mut data).map_err(malformed)?;
            let target = read_name(message, &mut data).map_err(malformed)?;
            // A target of "." means "no service here" (RFC 2782).
            if !target.is_empty() {
                records.push(SrvRecord {
                    priority,
                    weight,
                    port,
                    target,
                });
            }
        }
        pos = end;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_as_labels_and_bad_names_refused() {
        let mut out = Vec::new();
        encode_name(&mut out, "_autodiscover._tcp.example.com.").unwrap();
        assert_eq!(out, b"\x0d_autodiscover\x04_tcp\x07example\x03com\x00");
        assert!(encode_name(&mut Vec::new(), "a..b").is_err());
        assert!(encode_name(&mut Vec::new(), &"x".repeat(64)).is_err());
    }

    #[test]
    fn a_pointer_loop_is_an_error_not_a_hang() {
        // Header, then a name that points at itself.
        let mut message = vec![0u8; 12];
        message.extend_from_slice(&[0xC0, 12]);
        let mut pos = 12;
        assert!(read_name(&message, &mut pos).is_err());
    }

    #[test]
    fn name_servers_come_from_the_nameserver_lines_of_resolv_conf() {
        let path = std::env::temp_dir().join(format!("resolv-{}.conf", std::process::id()));
        std::fs::write(
            &path,
            "# comment\nsearch corp.example.test\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0\n",
        )
        .unwrap();
        let resolver = UdpSrvResolver::from_resolv_conf(&path, Duration::from_secs(1)).unwrap();
        std::fs::write(&path, "search corp.example.test\n").unwrap();
        let empty = UdpSrvResolver::from_resolv_conf(&path, Duration::from_secs(1)).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            resolver.servers,
            [
                "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        assert!(matches!(empty, SrvError::NoNameServer { .. }), "{empty}");
    }

    #[test]
    fn records_are_ordered_by_priority_then_weight() {
        let record = |priority, weight, target: &str| SrvRecord {
            priority,
            weight,
            port: 443,
            target: target.into(),
        };
        let mut records = vec![record(10, 5, "c"), record(0, 1, "b"), record(0, 50, "a")];
        order(&mut records);
        let targets: Vec<&str> = records.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["a", "b", "c"]);
    }
}
