//! A tiny DNS server on loopback UDP that answers SRV queries from a table
//! (and NXDOMAIN for other names), so the autodiscover SRV step is tested
//! with real DNS messages over a real socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::autodiscover::srv::{encode_name, read_name};
use crate::autodiscover::SrvRecord;

/// A running SRV responder; stops when dropped.
pub struct SrvDnsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
    queries: Arc<AtomicU64>,
}

impl SrvDnsServer {
    /// Answers SRV queries for the names in `records` (lower case, no
    /// trailing dot), on `bind` (e.g. `127.0.0.1:0`).
    pub async fn start(
        bind: &str,
        records: HashMap<String, Vec<SrvRecord>>,
    ) -> std::io::Result<SrvDnsServer> {
        let socket = UdpSocket::bind(bind).await?;
        let addr = socket.local_addr()?;
        let queries = Arc::new(AtomicU64::new(0));
        let counter = queries.clone();
        let task = tokio::spawn(async move {
            let mut buffer = vec![0u8; 1500];
            while let Ok((n, peer)) = socket.recv_from(&mut buffer).await {
                counter.fetch_add(1, Ordering::Relaxed);
                if let Some(answer) = answer(&buffer[..n], &records) {
                    let _ = socket.send_to(&answer, peer).await;
                }
            }
        });
        Ok(SrvDnsServer {
            addr,
            task,
            queries,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queries received so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Drop for SrvDnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The response to `query`, or `None` for something that is no query.
fn answer(query: &[u8], records: &HashMap<String, Vec<SrvRecord>>) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let questions = u16::from_be_bytes([query[4], query[5]]);
    let mut pos = 12;
    let name = read_name(query, &mut pos).ok()?;
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let question_end = pos + 4;
    if questions != 1 || question_end > query.len() {
        return None;
    }
    let found = records.get(&name.to_ascii_lowercase());
    let answers: &[SrvRecord] = match found {
        Some(list) if qtype == 33 => list,
        _ => &[],
    };
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&query[0..2]);
    // QR, RD copied, RA; RCODE 3 (NXDOMAIN) for unknown names.
    let rcode = if found.is_some() { 0 } else { 3 };
    out.push(0x80 | (query[2] & 0x01));
    out.push(0x80 | rcode);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..question_end]);
    for record in answers {
        // The owner name as a pointer to the question (offset 12), as real
        // servers compress it.
        out.extend_from_slice(&[0xC0, 12]);
        out.extend_from_slice(&33u16.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&300u32.to_be_bytes());
        let mut data = Vec::new();
        data.extend_from_slice(&record.priority.to_be_bytes());
        data.extend_from_slice(&record.weight.to_be_bytes());
        data.extend_from_slice(&record.port.to_be_bytes());
        encode_name(&mut data, &record.target).ok()?;
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(&data);
    }
    Some(out)
}
