//! A real DNS server for the tests, publishing a headless service the way CoreDNS does.
//!
//! It speaks the wire protocol on UDP and TCP (2-byte length framing) on one address, on tokio
//! tasks, and answers from an in-memory zone that tests change while it runs:
//! - authoritative answers (AA), positive records with TTL 30, so that a caching client would
//!   visibly keep stale data;
//! - NXDOMAIN for a name with no record at all, NOERROR with an empty answer ("no data") for a
//!   name that only has records of other types; both carry an SOA in the authority section
//!   (TTL 30, minimum 30), so that negative caching would show too;
//! - UDP answers larger than the client's EDNS size (512 without EDNS) are sent truncated (TC),
//!   so the client must retry over TCP;
//! - faults for every query: SERVFAIL, no reply at all, or a delay.
//!
//! Written as a plain loop over hickory-proto messages rather than on hickory-server: the tests
//! need faults a real server does not have (drop a query, delay it, count it), and a loop of
//! parse / answer / serialize keeps all of that in one short file.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

/// TTL of every record served, positive and negative (SOA TTL and minimum).
pub const TTL: u32 = 30;

/// UDP payload limit for a query without EDNS (RFC 1035).
const CLASSIC_UDP_LIMIT: usize = 512;

/// Largest EDNS payload we honour (the usual 1232 of DNS flag day 2020 would do too).
const MAX_UDP_PAYLOAD: u16 = 4096;

/// Pause after a failed receive or accept, so a lasting error does not spin a core.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// What the server does with every query until told otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally.
    None,
    /// Answer SERVFAIL.
    Servfail,
    /// Answer REFUSED.
    Refused,
    /// Send no reply at all: the client times out.
    Drop,
    /// Answer normally after this delay.
    Delay(Duration),
}

/// The records of one name.
#[derive(Debug, Clone, Default)]
struct Records {
    a: Vec<Ipv4Addr>,
    aaaa: Vec<Ipv6Addr>,
    srv: Vec<(String, u16)>,
    txt: Vec<String>,
    cname: Option<String>,
}

impl Records {
    fn is_empty(&self) -> bool {
        self.a.is_empty()
            && self.aaaa.is_empty()
            && self.srv.is_empty()
            && self.txt.is_empty()
            && self.cname.is_none()
    }
}

/// State shared by the server tasks and the test.
#[derive(Debug)]
struct Shared {
    zone: Mutex<HashMap<String, Records>>,
    fault: Mutex<Fault>,
    queries: AtomicU64,
    tcp_queries: AtomicU64,
}

/// A DNS server on UDP and TCP at one address; stops when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer").field("addr", &self.addr).finish()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        // Aborting a listener task drops its JoinSet, which aborts the tasks it spawned.
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl DnsServer {
    /// Serve UDP and TCP on `bind`; port 0 picks a port free for both.
    pub async fn start(bind: SocketAddr) -> std::io::Result<DnsServer> {
        let (udp, tcp) = bind_both(bind).await?;
        let addr = udp.local_addr()?;
        let shared = Arc::new(Shared {
            zone: Mutex::new(HashMap::new()),
            fault: Mutex::new(Fault::None),
            queries: AtomicU64::new(0),
            tcp_queries: AtomicU64::new(0),
        });
        let tasks = vec![
            tokio::spawn(serve_udp(Arc::new(udp), shared.clone())),
            tokio::spawn(serve_tcp(tcp, shared.clone())),
        ];
        Ok(DnsServer { addr, shared, tasks })
    }

    /// The address served (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replace all A records of `name` with `ip`.
    pub fn set_a(&self, name: &str, ip: Ipv4Addr) {
        self.set_a_all(name, vec![ip]);
    }

    /// Replace all A records of `name` with `ips` (empty removes them).
    pub fn set_a_all(&self, name: &str, ips: Vec<Ipv4Addr>) {
        self.edit(name, |r| r.a = ips);
    }

    /// Remove all A records of `name`.
    pub fn remove_a(&self, name: &str) {
        self.edit(name, |r| r.a.clear());
    }

    /// Replace all AAAA records of `name` with `ips` (empty removes them).
    pub fn set_aaaa(&self, name: &str, ips: Vec<Ipv6Addr>) {
        self.edit(name, |r| r.aaaa = ips);
    }

    /// Replace the SRV records of `name` with `targets` (`(host, port)`); empty removes them.
    pub fn set_srv(&self, name: &str, targets: Vec<(String, u16)>) {
        self.edit(name, |r| r.srv = targets);
    }

    /// Replace the TXT records of `name` with `texts` (one string each); empty removes them.
    pub fn set_txt(&self, name: &str, texts: Vec<String>) {
        self.edit(name, |r| r.txt = texts);
    }

    /// Make `name` a CNAME to `target` (None removes it). Queries for other types of `name` are
    /// answered with the CNAME and, when the target is in the zone, its records.
    pub fn set_cname(&self, name: &str, target: Option<&str>) {
        let target = target.map(str::to_string);
        self.edit(name, |r| r.cname = target);
    }

    /// Remove every record of `name`: it becomes NXDOMAIN.
    pub fn remove_name(&self, name: &str) {
        lock(&self.shared.zone).remove(&key(name));
    }

    /// Apply `fault` to every query from now on, until changed.
    pub fn set_fault(&self, fault: Fault) {
        *lock(&self.shared.fault) = fault;
    }

    /// Number of queries received so far (UDP and TCP, faulted ones included).
    pub fn queries(&self) -> u64 {
        self.shared.queries.load(Ordering::SeqCst)
    }

    /// Number of queries received over TCP so far.
    pub fn tcp_queries(&self) -> u64 {
        self.shared.tcp_queries.load(Ordering::SeqCst)
    }

    /// Change the records of `name`, dropping the name when nothing is left.
    fn edit(&self, name: &str, change: impl FnOnce(&mut Records)) {
        let mut zone = lock(&self.shared.zone);
        let records = zone.entry(key(name)).or_default();
        change(records);
        if records.is_empty() {
            zone.remove(&key(name));
        }
    }
}

/// Lock a mutex, ignoring poisoning (a panicking test thread must not wedge the server).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The zone key of a name: lowercase, without the trailing dot.
fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Bind UDP and TCP on the same address; with port 0, retry until one port is free for both.
async fn bind_both(bind: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last_error = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(bind).await?;
        let addr = udp.local_addr()?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if bind.port() == 0 => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no port free for udp and tcp")))
}

/// The UDP loop: one task per query, so a delayed query does not hold up the others.
async fn serve_udp(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            tokio::time::sleep(ERROR_PAUSE).await;
            continue;
        };
        let packet = buf[..len].to_vec();
        let (socket, shared) = (socket.clone(), shared.clone());
        tasks.spawn(async move {
            if let Some(reply) = handle(&packet, &shared, Transport::Udp).await {
                let _ = socket.send_to(&reply, peer).await;
            }
        });
        while tasks.try_join_next().is_some() {}
    }
}

/// The TCP accept loop: one task per connection.
async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(ERROR_PAUSE).await;
            continue;
        };
        connections.spawn(serve_connection(stream, shared.clone()));
        while connections.try_join_next().is_some() {}
    }
}

/// One TCP connection: length-prefixed queries, each answered by its own task (a client may
/// pipeline queries on one connection), replies written whole under a lock.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let (mut reader, writer) = stream.into_split();
    let writer = Arc::new(tokio::sync::Mutex::new(writer));
    let mut tasks = JoinSet::new();
    while let Ok(len) = reader.read_u16().await {
        let mut packet = vec![0u8; usize::from(len)];
        if reader.read_exact(&mut packet).await.is_err() {
            break;
        }
        let (writer, shared) = (writer.clone(), shared.clone());
        tasks.spawn(async move {
            if let Some(reply) = handle(&packet, &shared, Transport::Tcp).await {
                let _ = write_frame(&writer, &reply).await;
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    // The client closed: let answers still being delayed go out, then close.
    while tasks.join_next().await.is_some() {}
}

/// Write one length-prefixed message.
async fn write_frame(writer: &tokio::sync::Mutex<OwnedWriteHalf>, reply: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(reply.len()).map_err(std::io::Error::other)?;
    let mut frame = Vec::with_capacity(reply.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(reply);
    writer.lock().await.write_all(&frame).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// Count a query, apply the fault, and build the wire reply (None: send nothing).
async fn handle(packet: &[u8], shared: &Shared, transport: Transport) -> Option<Vec<u8>> {
    shared.queries.fetch_add(1, Ordering::SeqCst);
    if transport == Transport::Tcp {
        shared.tcp_queries.fetch_add(1, Ordering::SeqCst);
    }
    let request = Message::from_vec(packet).ok()?;
    let fault = *lock(&shared.fault);
    let response = match fault {
        Fault::Drop => return None,
        Fault::Servfail => error_reply(&request, ResponseCode::ServFail),
        Fault::Refused => error_reply(&request, ResponseCode::Refused),
        Fault::Delay(delay) => {
            tokio::time::sleep(delay).await;
            answer(&request, &lock(&shared.zone))
        }
        Fault::None => answer(&request, &lock(&shared.zone)),
    };
    encode(&request, response, transport)
}

/// Serialize `response`; over UDP, send it truncated (TC, no records) when it is larger than
/// the client accepts.
fn encode(request: &Message, response: Message, transport: Transport) -> Option<Vec<u8>> {
    let bytes = response.to_vec().ok()?;
    let limit = match (&request.edns, transport) {
        (_, Transport::Tcp) => usize::from(u16::MAX),
        (Some(edns), Transport::Udp) => usize::from(edns.max_payload()).max(CLASSIC_UDP_LIMIT),
        (None, Transport::Udp) => CLASSIC_UDP_LIMIT,
    };
    if bytes.len() <= limit {
        return Some(bytes);
    }
    response.truncate().to_vec().ok()
}

/// A reply with the request's header and question, and no records.
fn reply_to(request: &Message, code: ResponseCode) -> Message {
    let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata.op_code = request.metadata.op_code;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.response_code = code;
    response.add_queries(request.queries.iter().cloned());
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        response.set_edns(edns);
    }
    response
}

/// An error reply (SERVFAIL, REFUSED, FORMERR, NOTIMP).
fn error_reply(request: &Message, code: ResponseCode) -> Message {
    reply_to(request, code)
}

/// The authoritative answer to one standard query from `zone`.
fn answer(request: &Message, zone: &HashMap<String, Records>) -> Message {
    if request.metadata.op_code != OpCode::Query {
        return error_reply(request, ResponseCode::NotImp);
    }
    let [query] = request.queries.as_slice() else {
        return error_reply(request, ResponseCode::FormErr);
    };
    let mut response = reply_to(request, ResponseCode::NoError);
    response.metadata.authoritative = true;
    let records = resolve(query, zone);
    match records {
        Resolved::Records(records) => response.add_answers(records),
        Resolved::NoData(cnames) => {
            response.add_answers(cnames);
            response.add_authority(soa_for(query.name()))
        }
        Resolved::NxDomain(cnames) => {
            // NXDOMAIN after a CNAME refers to the CNAME's target, as RFC 6604 says.
            response.metadata.response_code = ResponseCode::NXDomain;
            response.add_answers(cnames);
            response.add_authority(soa_for(query.name()))
        }
    };
    response
}

/// What a query finds in the zone.
enum Resolved {
    /// Records of the asked type (after any CNAMEs, which come first).
    Records(Vec<Record>),
    /// The final name exists without records of this type (CNAMEs followed so far).
    NoData(Vec<Record>),
    /// The final name does not exist (CNAMEs followed so far).
    NxDomain(Vec<Record>),
}

/// Look the query up, following CNAMEs inside the zone (at most 8, as resolvers do).
fn resolve(query: &Query, zone: &HashMap<String, Records>) -> Resolved {
    let qtype = query.query_type();
    let mut owner = query.name().clone();
    let mut chain = Vec::new();
    for _ in 0..8 {
        let Some(records) = zone.get(&key(&owner.to_ascii())) else {
            return Resolved::NxDomain(chain);
        };
        let found = records_of(&owner, records, qtype);
        if !found.is_empty() {
            chain.extend(found);
            return Resolved::Records(chain);
        }
        let Some(target) = &records.cname else {
            return Resolved::NoData(chain);
        };
        let target = absolute(target);
        chain.push(Record::from_rdata(owner.clone(), TTL, RData::CNAME(CNAME(target.clone()))));
        owner = target;
    }
    Resolved::NoData(chain)
}

/// The records of type `qtype` for `owner`.
fn records_of(owner: &Name, records: &Records, qtype: RecordType) -> Vec<Record> {
    let rdata: Vec<RData> = match qtype {
        RecordType::A => records.a.iter().map(|ip| RData::A(A(*ip))).collect(),
        RecordType::AAAA => records.aaaa.iter().map(|ip| RData::AAAA(AAAA(*ip))).collect(),
        RecordType::SRV => srv_rdata(&records.srv),
        RecordType::TXT => records.txt.iter().map(|t| RData::TXT(TXT::new(vec![t.clone()]))).collect(),
        RecordType::CNAME => records.cname.iter().map(|t| RData::CNAME(CNAME(absolute(t)))).collect(),
        _ => Vec::new(),
    };
    rdata.into_iter().map(|data| Record::from_rdata(owner.clone(), TTL, data)).collect()
}

/// SRV records as CoreDNS publishes a headless service: priority 0, equal weights.
fn srv_rdata(targets: &[(String, u16)]) -> Vec<RData> {
    let weight = u16::try_from(100 / targets.len().max(1)).unwrap_or(1);
    targets.iter().map(|(host, port)| RData::SRV(SRV::new(0, weight, *port, absolute(host)))).collect()
}

/// The SOA sent with a negative answer: zone = the queried name's parent, TTL and minimum 30.
fn soa_for(name: &Name) -> Record {
    let zone = if name.num_labels() > 1 { name.base_name() } else { Name::root() };
    let mname =
        Name::from_ascii("ns.dns").and_then(|n| n.append_domain(&zone)).unwrap_or_else(|_| Name::root());
    let rname =
        Name::from_ascii("hostmaster").and_then(|n| n.append_domain(&zone)).unwrap_or_else(|_| Name::root());
    let soa = SOA::new(mname, rname, 1, 7200, 1800, 86400, TTL);
    Record::from_rdata(zone, TTL, RData::SOA(soa))
}

/// `host` as an absolute name; a test helper, so a bad name is a test bug.
fn absolute(host: &str) -> Name {
    let mut name = Name::from_ascii(host).unwrap_or_else(|e| panic!("bad dns name {host:?}: {e}"));
    name.set_fqdn(true);
    name
}
