//! TEMPORARY stand-in (wt-bed only) for the DNS test server written in parallel: same API, UDP
//! only, A and SRV only. Replaced by the real server at merge; do not build on its details.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

pub enum Fault {
    None,
    Servfail,
    Drop,
    Delay(Duration),
}

#[derive(Default)]
struct Zone {
    a: HashMap<String, Ipv4Addr>,
    srv: HashMap<String, Vec<(String, u16)>>,
    fault: Option<Fault>,
}

pub struct DnsServer {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsServer {
    pub async fn start(bind: SocketAddr) -> std::io::Result<DnsServer> {
        let sock = Arc::new(UdpSocket::bind(bind).await?);
        let addr = sock.local_addr()?;
        let zone = Arc::new(Mutex::new(Zone::default()));
        let queries = Arc::new(AtomicU64::new(0));
        let (z, q) = (zone.clone(), queries.clone());
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
                q.fetch_add(1, Ordering::Relaxed);
                let Ok(req) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let (reply, delay) = {
                    let zone = z.lock().expect("dns zone lock");
                    match zone.fault {
                        Some(Fault::Drop) => continue,
                        Some(Fault::Delay(d)) => (answer(&req, &zone, false), Some(d)),
                        Some(Fault::Servfail) => (answer(&req, &zone, true), None),
                        _ => (answer(&req, &zone, false), None),
                    }
                };
                let Some(reply) = reply else { continue };
                let sock = sock.clone();
                tokio::spawn(async move {
                    if let Some(d) = delay {
                        tokio::time::sleep(d).await;
                    }
                    let _ = sock.send_to(&reply, peer).await;
                });
            }
        });
        Ok(DnsServer {
            addr,
            zone,
            queries,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set_a(&self, name: &str, ip: Ipv4Addr) {
        self.zone
            .lock()
            .expect("dns zone lock")
            .a
            .insert(key(name), ip);
    }

    pub fn remove_a(&self, name: &str) {
        self.zone
            .lock()
            .expect("dns zone lock")
            .a
            .remove(&key(name));
    }

    pub fn set_srv(&self, name: &str, targets: Vec<(String, u16)>) {
        let mut zone = self.zone.lock().expect("dns zone lock");
        if targets.is_empty() {
            zone.srv.remove(&key(name));
        } else {
            zone.srv.insert(key(name), targets);
        }
    }

    pub fn set_fault(&self, fault: Fault) {
        self.zone.lock().expect("dns zone lock").fault = Some(fault);
    }

    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(req: &Message, zone: &Zone, servfail: bool) -> Option<Vec<u8>> {
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.authoritative = true;
    let q = req.queries.first()?;
    resp.add_query(q.clone());
    let k = key(&q.name().to_string());
    if servfail {
        resp.metadata.response_code = ResponseCode::ServFail;
    } else if !zone.a.contains_key(&k) && !zone.srv.contains_key(&k) {
        resp.metadata.response_code = ResponseCode::NXDomain;
    } else if q.query_type() == RecordType::A {
        if let Some(ip) = zone.a.get(&k) {
            resp.add_answer(Record::from_rdata(q.name().clone(), 5, RData::A(A(*ip))));
        }
    } else if q.query_type() == RecordType::SRV {
        for (target, port) in zone.srv.get(&k).into_iter().flatten() {
            let target = Name::from_ascii(format!("{}.", key(target))).ok()?;
            let srv = SRV::new(0, 100, *port, target);
            resp.add_answer(Record::from_rdata(q.name().clone(), 5, RData::SRV(srv)));
        }
    }
    resp.to_vec().ok()
}
