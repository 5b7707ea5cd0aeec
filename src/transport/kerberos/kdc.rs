//! Finding the KDCs of a realm and talking to them over TCP (RFC 4120
//! 7.2.2: a 4-byte big-endian length, then the message). sspi does no network
//! I/O itself; it hands each KDC message to a [`sspi::NetworkClient`], and the
//! caller runs the whole exchange on a blocking thread, off the runtime's
//! workers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

use super::{KerberosFailure, KerberosSettings};

/// The KDC port (RFC 4120 7.2.3.1).
pub(crate) const KDC_PORT: u16 = 88;
/// Largest KDC answer read: a ticket with a large PAC (many groups) is tens
/// of KiB; a length prefix above this is a hostile or broken server.
const MAX_KDC_REPLY_BYTES: usize = 1024 * 1024;

/// One KDC: host (IPv6 without brackets) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KdcAddress {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Addresses found with the SRV record's resolver; empty: resolve
    /// `host` with the system's when connecting.
    pub(crate) addresses: Vec<std::net::IpAddr>,
}

impl KdcAddress {
    /// `host`, `host:port`, `[v6]` or `[v6]:port`.
    pub(crate) fn parse(text: &str) -> Result<KdcAddress, String> {
        let text = text.trim();
        let invalid =
            |why: &str| format!("KDC {text:?} is not valid: {why}; write host or host:port");
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }
        if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| invalid("a `[` without `]`"))?;
            let port = match after.strip_prefix(':') {
                Some(port) => port
                    .parse()
                    .map_err(|_| invalid("the port is not a number from 1 to 65535"))?,
                None if after.is_empty() => KDC_PORT,
                None => return Err(invalid("text after `]`")),
            };
            return Ok(KdcAddress {
                host: host.to_owned(),
                port,
                addresses: Vec::new(),
            });
        }
        match text.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => Ok(KdcAddress {
                host: text.to_owned(),
                port: KDC_PORT,
                addresses: Vec::new(),
            }),
            Some((host, port)) => {
                let port: u16 = port
                    .parse()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| invalid("the port is not a number from 1 to 65535"))?;
                if host.is_empty() {
                    return Err(invalid("the host is empty"));
                }
                Ok(KdcAddress {
                    host: host.to_owned(),
                    port,
                    addresses: Vec::new(),
                })
            }
            None => Ok(KdcAddress {
                host: text.to_owned(),
                port: KDC_PORT,
                addresses: Vec::new(),
            }),
        }
    }
}

impl std::fmt::Display for KdcAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The KDCs to ask, in order: the configured ones; else the realm's DNS SRV
/// records `_kerberos._tcp.<REALM>` (RFC 4120 7.2.3.2, as Windows finds its
/// domain controllers); else the fallback (the directory's DC).
pub(crate) async fn locate(
    settings: &KerberosSettings,
    realm: &str,
) -> Result<Vec<KdcAddress>, KerberosFailure> {
    let unreachable = |reason: String| KerberosFailure::KdcUnreachable {
        kdcs: Vec::new(),
        reason,
    };
    if !settings.kdcs.is_empty() {
        return settings
            .kdcs
            .iter()
            .map(|kdc| KdcAddress::parse(kdc))
            .collect::<Result<_, _>>()
            .map_err(unreachable);
    }
    let srv_name = format!("_kerberos._tcp.{realm}.");
    let srv = srv_lookup(&srv_name, settings).await;
    match srv {
        Ok(found) if !found.is_empty() => return Ok(found),
        Ok(_) | Err(_) => {}
    }
    if let Some(fallback) = &settings.fallback_kdc {
        return KdcAddress::parse(fallback)
            .map(|kdc| vec![kdc])
            .map_err(unreachable);
    }
    Err(unreachable(match srv {
        Err(why) => format!(
            "DNS lookup of the SRV record {srv_name} failed ({why}) and no KDC is configured"
        ),
        Ok(_) => format!("DNS has no SRV record {srv_name} and no KDC is configured"),
    }))
}

/// SRV targets by priority, then weight (heaviest first; RFC 2782's random
/// choice among equals is not needed for a handful of DCs).
async fn srv_lookup(name: &str, settings: &KerberosSettings) -> Result<Vec<KdcAddress>, String> {
    let resolver = match settings.dns_server {
        Some(server) => resolver_for(server),
        None => TokioResolver::builder_tokio().and_then(|b| b.build()),
    }
    .map_err(|e| e.to_string())?;
    let lookup = tokio::time::timeout(settings.kdc_timeout, resolver.srv_lookup(name))
        .await
        .map_err(|_| format!("no DNS answer within {:?}", settings.kdc_timeout))?
        .map_err(|e| e.to_string())?;
    let mut records: Vec<_> = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            hickory_resolver::proto::rr::RData::SRV(srv) => Some((
                srv.priority,
                std::cmp::Reverse(srv.weight),
                KdcAddress {
                    host: srv.target.to_utf8().trim_end_matches('.').to_owned(),
                    port: srv.port,
                    addresses: Vec::new(),
                },
            )),
            _ => None,
        })
        // "." as target means "no service here" (RFC 2782)
        .filter(|(_, _, kdc)| !kdc.host.is_empty())
        .collect();
    records.sort_by_key(|(priority, weight, _)| (*priority, *weight));
    let mut kdcs: Vec<KdcAddress> = records.into_iter().map(|(_, _, kdc)| kdc).collect();
    // The targets are resolved where the SRV record came from: with a
    // configured DNS server, the system's resolver may not know them.
    for kdc in &mut kdcs {
        if let Ok(Ok(found)) =
            tokio::time::timeout(settings.kdc_timeout, resolver.lookup_ip(kdc.host.as_str())).await
        {
            kdc.addresses = found.iter().collect();
        }
    }
    Ok(kdcs)
}

fn resolver_for(server: SocketAddr) -> Result<TokioResolver, hickory_resolver::net::NetError> {
    let mut udp = hickory_resolver::config::ConnectionConfig::udp();
    udp.port = server.port();
    let mut tcp = hickory_resolver::config::ConnectionConfig::tcp();
    tcp.port = server.port();
    let config = ResolverConfig::from_parts(
        None,
        Vec::new(),
        vec![NameServerConfig::new(server.ip(), true, vec![udp, tcp])],
    );
    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default()).build()
}

/// sspi's network client: every KDC message goes to the first KDC of the
/// list that answers (sspi knows one URL; the list is ours). Blocking, with
/// the configured timeout on connect and on each read and write.
pub(crate) struct TcpKdcClient {
    kdcs: Vec<KdcAddress>,
    timeout: Duration,
    /// The KDC that answered last; tried first next time.
    preferred: AtomicUsize,
    /// Why the last exchange failed, for [`KerberosFailure::KdcUnreachable`].
    last_error: Mutex<Option<String>>,
}

impl TcpKdcClient {
    pub(crate) fn new(kdcs: Vec<KdcAddress>, timeout: Duration) -> TcpKdcClient {
        TcpKdcClient {
            kdcs,
            timeout,
            preferred: AtomicUsize::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub(crate) fn kdcs(&self) -> Vec<String> {
        self.kdcs.iter().map(ToString::to_string).collect()
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn exchange_with(&self, kdc: &KdcAddress, message: &[u8]) -> Result<Vec<u8>, String> {
        let addresses: Vec<SocketAddr> = if kdc.addresses.is_empty() {
            (kdc.host.as_str(), kdc.port)
                .to_socket_addrs()
                .map_err(|e| format!("{kdc}: cannot resolve the host: {e}"))?
                .collect()
        } else {
            kdc.addresses
                .iter()
                .map(|ip| SocketAddr::new(*ip, kdc.port))
                .collect()
        };
        let mut last = format!("{kdc}: the host has no address");
        for address in addresses {
            match self.exchange_at(address, message) {
                Ok(answer) => return Ok(answer),
                Err(why) => last = format!("{kdc}: {why}"),
            }
        }
        Err(last)
    }

    fn exchange_at(&self, address: SocketAddr, message: &[u8]) -> Result<Vec<u8>, String> {
        let mut stream = TcpStream::connect_timeout(&address, self.timeout)
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        stream
            .set_read_timeout(Some(self.timeout))
            .and_then(|()| stream.set_write_timeout(Some(self.timeout)))
            .map_err(|e| e.to_string())?;
        // sspi's TCP messages carry their length prefix already.
        stream
            .write_all(message)
            .map_err(|e| format!("sending to {address}: {e}"))?;
        let mut prefix = [0u8; 4];
        stream
            .read_exact(&mut prefix)
            .map_err(|e| format!("no answer from {address} within {:?}: {e}", self.timeout))?;
        let length = u32::from_be_bytes(prefix) as usize;
        if length > MAX_KDC_REPLY_BYTES {
            return Err(format!(
                "{address} announced an answer of {length} bytes, more than the {MAX_KDC_REPLY_BYTES} a KDC sends"
            ));
        }
        let mut answer = vec![0u8; 4 + length];
        answer[..4].copy_from_slice(&prefix);
        stream
            .read_exact(&mut answer[4..])
            .map_err(|e| format!("reading the answer of {address}: {e}"))?;
        Ok(answer)
    }
}

impl sspi::network_client::NetworkClient for TcpKdcClient {
    fn send(&self, request: &sspi::generator::NetworkRequest) -> sspi::Result<Vec<u8>> {
        let fail = |why: String| {
            *self
                .last_error
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(why.clone());
            sspi::Error::new(sspi::ErrorKind::NoAuthenticatingAuthority, why)
        };
        if request.protocol != sspi::network_client::NetworkProtocol::Tcp {
            return Err(fail(format!(
                "KDC protocol {:?} is not used here",
                request.protocol
            )));
        }
        if self.kdcs.is_empty() {
            return Err(fail("no KDC to ask".to_owned()));
        }
        let first = self.preferred.load(Ordering::Relaxed) % self.kdcs.len();
        let mut reasons = Vec::new();
        for offset in 0..self.kdcs.len() {
            let index = (first + offset) % self.kdcs.len();
            match self.exchange_with(&self.kdcs[index], &request.data) {
                Ok(answer) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(answer);
                }
                Err(why) => reasons.push(why),
            }
        }
        Err(fail(reasons.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdc_address_forms() {
        let parse = |text| KdcAddress::parse(text).map(|k| k.to_string());
        assert_eq!(
            parse("dc1.corp.example.com").unwrap(),
            "dc1.corp.example.com:88"
        );
        assert_eq!(parse("dc1:1088").unwrap(), "dc1:1088");
        assert_eq!(parse("[::1]:88").unwrap(), "[::1]:88");
        assert_eq!(parse("[::1]").unwrap(), "[::1]:88");
        assert_eq!(parse("::1").unwrap(), "[::1]:88");
        for bad in ["", "dc1:", "dc1:0", "dc1:99999", ":88", "[::1", "[::1]x"] {
            let err = KdcAddress::parse(bad).unwrap_err();
            assert!(err.contains("host or host:port"), "{bad:?}: {err}");
        }
    }
}
