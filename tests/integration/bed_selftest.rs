//! Self-tests of the pod bed: a pod looks like a StatefulSet pod from inside (hostname, PID 1,
//! resolv.conf, IP, environment, volume), pods and the test process reach each other, DNS follows
//! the pods, lifecycle calls report real exit statuses, and nothing outlives a Bed.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::bed::{self, Bed, Fault, PodExit, PodSpec, Publish, Signal};
use crate::prereq;

const EXIT: Duration = Duration::from_secs(20);

/// A pod that stays up until killed (PID 1 ignores SIGTERM, as a shell without a trap does).
fn idle() -> PodSpec {
    PodSpec::shell("echo up; while :; do sleep 1 & wait $!; done")
}

#[tokio::test(flavor = "multi_thread")]
async fn bed_pod_looks_like_a_statefulset_pod_from_inside() {
    let name = "bed_pod_looks_like_a_statefulset_pod_from_inside";
    if !prereq::need_root(name) {
        return;
    }
    let bed = Bed::new(name).await;
    let vol = bed.volume(2);
    let script = r#"
echo "hostname=$(cat /proc/sys/kernel/hostname)"
echo "uname=$(uname -n)"
echo "pid=$$"
echo "pid1=$(cat /proc/1/comm)"
echo "--- resolv.conf"; cat /etc/resolv.conf; echo "--- end"
echo "addr=$(ip -4 -o addr show dev eth0)"
echo "routes=$(ip -4 route | tr '\n' ';')"
echo "hosts=$(grep etcd-2 /etc/hosts)"
echo "envnames=$(env | cut -d= -f1 | sort | tr '\n' ' ')"
echo "PATH=$PATH HOSTNAME=$HOSTNAME FOO=$FOO MY_IP=$MY_IP"
grep -q " $VOL " /proc/self/mountinfo && echo "volume=mountpoint"
"#;
    let spec = PodSpec::shell(script).env("FOO", "bar").env("VOL", vol.to_string_lossy()).pod_ip_env("MY_IP");
    let ip = bed.start_pod(2, spec).await;
    let exit = bed.wait_exit(2, EXIT).await;
    let out = bed.logs_current(2);
    assert_eq!(exit, Some(PodExit::Code(0)), "pod output:\n{out}");
    let gw = bed.gateway();

    assert!(out.contains("hostname=etcd-2\n"), "{out}");
    assert!(out.contains("uname=etcd-2\n"), "{out}");
    assert!(out.contains("pid=1\n"), "{out}");
    assert!(out.contains("pid1=sh\n"), "{out}");
    let resolv = format!(
        "--- resolv.conf\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n\
         nameserver {gw}\noptions ndots:5\n--- end\n"
    );
    assert!(out.contains(&resolv), "want\n{resolv}in\n{out}");
    assert!(out.contains(&format!(" inet {ip}/24 ")), "pod IP {ip} not on eth0:\n{out}");
    assert_eq!(ip.octets()[..3], gw.octets()[..3]);
    let routes = out.lines().find_map(|l| l.strip_prefix("routes=")).expect("the pod printed its routes");
    assert!(!routes.contains("default"), "a pod has no default route: {routes}");
    assert!(out.contains(&format!("hosts={ip}\tetcd-2.etcd.default.svc.cluster.local\tetcd-2\n")), "{out}");
    assert!(out.contains(&format!("PATH={} HOSTNAME=etcd-2 FOO=bar MY_IP={ip}\n", bed::POD_PATH)), "{out}");
    let names_line =
        out.lines().find_map(|l| l.strip_prefix("envnames=")).expect("the pod printed its variable names");
    for var in names_line.split_whitespace() {
        assert!(
            ["FOO", "HOSTNAME", "MY_IP", "PATH", "PWD", "VOL", "SHLVL", "_", "OLDPWD"].contains(&var),
            "variable {var} leaked into the pod: {names_line}"
        );
    }
    assert!(out.contains("volume=mountpoint\n"), "{out}");
    assert_eq!(bed.pod_ip(2), ip);
    assert_eq!(bed.client_url(2), format!("http://{ip}:2379"));
    assert!(!bed.is_running(2));
    assert!(bed.exists(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn bed_dns_follows_pods_and_pods_resolve_siblings() {
    let name = "bed_dns_follows_pods_and_pods_resolve_siblings";
    if !prereq::need_root(name) {
        return;
    }
    let bed = Bed::new(name).await;
    let dns = bed.dns_addr();
    assert_eq!(dns, SocketAddr::new(bed.gateway().into(), 53));

    let ip0 = bed.start_pod(0, idle()).await;
    let ip1 = bed.start_pod(1, idle()).await;
    assert_eq!(lookup_a(dns, &bed::pod_fqdn(0)).await, Ok(vec![ip0]));
    assert_eq!(lookup_a(dns, &bed::pod_fqdn(1)).await, Ok(vec![ip1]));
    assert_eq!(srv_targets(dns, bed::SRV_SERVER).await, targets(&[0, 1], 2380));
    assert_eq!(srv_targets(dns, bed::SRV_CLIENT).await, targets(&[0, 1], 2379));

    // From inside a pod, through its resolv.conf: the search list and the FQDN.
    let probe = "getent hosts etcd-1.etcd; getent hosts etcd-0.etcd.default.svc.cluster.local";
    bed.start_pod(5, PodSpec::shell(probe)).await;
    assert_eq!(bed.wait_exit(5, EXIT).await, Some(PodExit::Code(0)));
    let out = bed.logs_current(5);
    let answers: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    for (ip, ordinal) in [(ip1, 1), (ip0, 0)] {
        let want = [ip.to_string(), bed::pod_fqdn(ordinal)];
        assert!(answers.contains(&want.iter().map(String::as_str).collect()), "{out}");
    }
    bed.delete_pod(5).await;

    // Published after a delay.
    let started = Instant::now();
    let ip2 = bed.start_pod(2, idle().publish(Publish::After(Duration::from_millis(800)))).await;
    assert_eq!(lookup_a(dns, &bed::pod_fqdn(2)).await, Err(ResponseCode::NXDomain));
    assert!(!bed.is_published(2));
    let deadline = Instant::now() + Duration::from_secs(10);
    while lookup_a(dns, &bed::pod_fqdn(2)).await != Ok(vec![ip2]) {
        assert!(Instant::now() < deadline, "etcd-2 never published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert_eq!(srv_targets(dns, bed::SRV_SERVER).await, targets(&[0, 1, 2], 2380));

    // Never published until the test says so.
    let ip3 = bed.start_pod(3, idle().publish(Publish::Never)).await;
    assert_eq!(lookup_a(dns, &bed::pod_fqdn(3)).await, Err(ResponseCode::NXDomain));
    bed.publish(3);
    assert_eq!(lookup_a(dns, &bed::pod_fqdn(3)).await, Ok(vec![ip3]));

    // Unpublished when deleted.
    let exit = bed.kill_pod(1).await;
    assert_eq!(exit, PodExit::Signal(9));
    assert_eq!(lookup_a(dns, &bed::pod_fqdn(1)).await, Err(ResponseCode::NXDomain));
    assert_eq!(srv_targets(dns, bed::SRV_CLIENT).await, targets(&[0, 2, 3], 2379));

    // A delayed publication of a pod deleted before the delay never happens.
    bed.start_pod(4, idle().publish(Publish::After(Duration::from_millis(300)))).await;
    bed.kill_pod(4).await;
    let ip4 = bed.start_pod(4, idle().publish(Publish::Never)).await;
    tokio::time::sleep(Duration::from_millis(600)).await; // past the old timer, on purpose
    assert_eq!(
        lookup_a(dns, &bed::pod_fqdn(4)).await,
        Err(ResponseCode::NXDomain),
        "the first etcd-4's timer published the second one ({ip4})"
    );
    assert!(bed.dns().queries() > 0);

    // Fault injection reaches the bed's server.
    bed.dns().set_fault(Fault::Servfail);
    assert_eq!(lookup_a(dns, &bed::pod_fqdn(0)).await, Err(ResponseCode::ServFail));
    bed.dns().set_fault(Fault::None);
    assert_eq!(lookup_a(dns, &bed::pod_fqdn(0)).await, Ok(vec![ip0]));
}

#[tokio::test(flavor = "multi_thread")]
async fn bed_pods_and_test_process_reach_each_other() {
    let name = "bed_pods_and_test_process_reach_each_other";
    if !prereq::need_root(name) {
        return;
    }
    let Some(etcd) = prereq::need_etcd(name) else {
        return;
    };
    let bed = Bed::new(name).await;
    let vol = bed.volume(0);
    let run_etcd = r#"exec "$ETCD" --name etcd-0 --data-dir "$VOL/data" \
  --listen-client-urls "http://$POD_IP:2379" --advertise-client-urls "http://$POD_IP:2379" \
  --listen-peer-urls "http://$POD_IP:2380" --initial-advertise-peer-urls "http://$POD_IP:2380" \
  --initial-cluster "etcd-0=http://$POD_IP:2380""#;
    let spec = PodSpec::shell(run_etcd)
        .env("ETCD", etcd.to_string_lossy())
        .env("VOL", vol.to_string_lossy())
        .pod_ip_env("POD_IP")
        .grace(Duration::from_secs(10));
    let ip0 = bed.start_pod(0, spec).await;

    // The test process reaches the pod.
    let health = wait_healthy(ip0, Duration::from_secs(30)).await;
    assert!(health.is_some(), "etcd in pod 0 not healthy from the test process; log:\n{}", bed.logs(0));

    // Another pod reaches it, by name (its resolv.conf) and by IP.
    let http = r#"for t in etcd-0.etcd "$TARGET"; do
  exec 3<>"/dev/tcp/$t/2379" || exit 7
  printf 'GET /health HTTP/1.0\r\n\r\n' >&3
  echo "via $t: $(cat <&3 | tail -n 1)"
  exec 3<&-
done"#;
    let client = PodSpec::new("/bin/bash").args(["-c", http]).env("TARGET", ip0.to_string());
    bed.start_pod(1, client).await;
    let exit = bed.wait_exit(1, EXIT).await;
    let out = bed.logs_current(1);
    assert_eq!(exit, Some(PodExit::Code(0)), "{out}");
    for via in ["etcd-0.etcd", &ip0.to_string()] {
        assert!(out.contains(&format!("via {via}: {{\"health\":\"true\"")), "{out}");
    }

    // Cut the pod off: unreachable; restore: reachable again.
    bed.cut_network(0);
    assert!(http_health(ip0, Duration::from_millis(500)).await.is_none(), "pod 0 reachable while cut off");
    bed.restore_network(0);
    assert!(wait_healthy(ip0, Duration::from_secs(20)).await.is_some(), "pod 0 unreachable after restore");

    // etcd handles SIGTERM itself as PID 1 and exits 0 within the grace period.
    let started = Instant::now();
    let exit = bed.delete_pod(0).await;
    assert_eq!(exit, PodExit::Code(0), "{}", bed.logs_current(0));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn bed_recreated_pod_gets_new_ip_and_keeps_volume() {
    let name = "bed_recreated_pod_gets_new_ip_and_keeps_volume";
    if !prereq::need_root(name) {
        return;
    }
    let bed = Bed::new(name).await;
    let vol = bed.volume(0);
    let write =
        PodSpec::shell("echo first-life > \"$VOL/marker\" && echo wrote").env("VOL", vol.to_string_lossy());
    let ip_a = bed.start_pod(0, write).await;
    assert_eq!(bed.wait_exit(0, EXIT).await, Some(PodExit::Code(0)));
    // A container restart keeps the pod: same IP, same network namespace.
    bed.restart_container(0).await;
    assert_eq!(bed.wait_exit(0, EXIT).await, Some(PodExit::Code(0)));
    assert_eq!(bed.pod_ip(0), ip_a);
    assert_eq!(bed.delete_pod(0).await, PodExit::Code(0));
    assert!(!bed.exists(0));

    let read = PodSpec::shell("echo \"read: $(cat \"$VOL/marker\")\"; ls -A \"$VOL\"")
        .env("VOL", vol.to_string_lossy());
    let ip_b = bed.start_pod(0, read.clone()).await;
    assert_ne!(ip_a, ip_b, "a recreated pod must get a new IP");
    assert_eq!(bed.wait_exit(0, EXIT).await, Some(PodExit::Code(0)));
    let current = bed.logs_current(0);
    assert!(current.contains("read: first-life\n"), "{current}");
    assert!(!current.contains("wrote"), "{current}");
    let all = bed.logs(0);
    assert_eq!(all.matches("wrote\n").count(), 2, "{all}");
    assert!(all.contains("container restarted"), "{all}");
    assert!(all.contains(&format!("incarnation 2), ip {ip_b}")), "{all}");

    // Volume loss: the next pod finds an ext4-like empty volume.
    bed.delete_pod(0).await;
    bed.fresh_volume_with_lost_found(0);
    let ip_c = bed.start_pod(0, read).await;
    assert_ne!(ip_c, ip_b);
    assert_eq!(bed.wait_exit(0, EXIT).await, Some(PodExit::Code(0)));
    let current = bed.logs_current(0);
    assert!(current.contains("read: \n"), "{current}");
    assert!(current.ends_with("lost+found\n"), "{current}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bed_signals_and_exit_statuses_of_pid1() {
    let name = "bed_signals_and_exit_statuses_of_pid1";
    if !prereq::need_root(name) {
        return;
    }
    let bed = Bed::new(name).await;

    // A trapped SIGTERM reaches PID 1 and its exit code comes back.
    let trap = "trap 'echo got TERM; exit 42' TERM; echo ready; while :; do sleep 1 & wait $!; done";
    bed.start_pod(0, PodSpec::shell(trap)).await;
    assert!(bed.wait_log(0, "ready", EXIT).await, "{}", bed.logs(0));
    assert!(bed.is_running(0));
    assert!(bed.signal_pid1(0, Signal::SIGTERM).await);
    assert_eq!(bed.wait_exit(0, EXIT).await, Some(PodExit::Code(42)));
    assert!(bed.logs_current(0).contains("got TERM"));
    assert!(!bed.is_running(0));
    assert!(!bed.signal_pid1(0, Signal::SIGTERM).await);

    // An unhandled SIGTERM is dropped (PID 1): delete waits out the grace, then SIGKILL.
    bed.start_pod(1, idle().grace(Duration::from_millis(700))).await;
    assert!(bed.wait_log(1, "up", EXIT).await);
    let started = Instant::now();
    assert_eq!(bed.delete_pod(1).await, PodExit::Signal(9));
    assert!(started.elapsed() >= Duration::from_millis(700));

    // Plain exit codes, and a wait that times out.
    bed.start_pod(2, PodSpec::shell("exit 3")).await;
    assert_eq!(bed.wait_exit(2, EXIT).await, Some(PodExit::Code(3)));
    bed.start_pod(3, idle()).await;
    assert_eq!(bed.wait_exit(3, Duration::from_millis(200)).await, None);
    assert_eq!(bed.kill_pod(3).await, PodExit::Signal(9));

    // A missing program: the wrapper's exec fails with 127.
    bed.start_pod(4, PodSpec::new("/nonexistent/program")).await;
    assert_eq!(bed.wait_exit(4, EXIT).await, Some(PodExit::Code(127)));
}

#[tokio::test(flavor = "multi_thread")]
async fn bed_drop_leaves_nothing_behind() {
    let name = "bed_drop_leaves_nothing_behind";
    if !prereq::need_root(name) {
        return;
    }
    // Shared between tasks like a test with a writer task would (and dropped through the Arc).
    let bed = Arc::new(Bed::new(name).await);
    bed.start_pod(0, idle()).await;
    let other = bed.clone();
    tokio::spawn(async move { other.start_pod(1, idle()).await })
        .await
        .expect("start a pod from another task");
    assert!(bed.wait_log(1, "up", EXIT).await);
    let (netns, link) = bed.kernel_names();
    assert_eq!(netns.len(), 3);
    let root = bed.root().to_path_buf();
    let etc: Vec<_> = netns[1..].iter().map(|n| bed::net::etc_netns(n)).collect();
    let mut pids = Vec::new();
    for ns in &netns[1..] {
        pids.extend(netns_pids(ns));
    }
    assert!(pids.len() >= 4, "two shells and their sleeps: {pids:?}");
    assert!(etc.iter().all(|d| d.is_dir()));
    assert!(bed::net::link_exists(None, &link));
    drop(bed);

    assert_gone(&netns, &link, &root, &etc, &pids);
}

#[tokio::test(flavor = "multi_thread")]
async fn bed_removes_leftovers_of_a_crashed_run() {
    let name = "bed_removes_leftovers_of_a_crashed_run";
    if !prereq::need_root(name) {
        return;
    }
    // Find a slot number, then play a run that crashed on it: its namespaces (one with a process
    // in it), its gateway link, its /etc/netns entry and temp root are still there.
    let k = Bed::new(name).await.slot();
    // Another test's fork may hold a copy of the lock's fd for a moment (until its exec).
    let fake = poll(|| bed::net::lock_slot_for_test(k)).await;
    let lan = fake.lan_ns();
    let pod_ns = fake.pod_ns(7);
    let link = fake.gw_link();
    let root = fake.root_dir();
    let etc = bed::net::etc_netns(&pod_ns);
    for args in [
        vec!["netns", "add", lan.as_str()],
        vec!["netns", "add", pod_ns.as_str()],
        vec!["link", "add", &link, "type", "veth", "peer", "name", "gw", "netns", &lan],
    ] {
        bed::net::ip(&args).expect("plant a leftover");
    }
    std::fs::create_dir_all(root.join("vol")).expect("plant a temp root");
    std::fs::create_dir_all(&etc).expect("plant an /etc/netns entry");
    let mut orphan = KillOnDrop(
        std::process::Command::new("ip")
            .args(["netns", "exec", &pod_ns, "sleep", "1000"])
            .spawn()
            .expect("start a process in the leftover namespace"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while netns_pids(&pod_ns).is_empty() {
        assert!(Instant::now() < deadline, "the orphan never entered {pod_ns}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(fake); // the crashed run's lock dies with it

    let slot = poll(|| bed::net::Slot::take(k)).await;
    let status = orphan.0.wait().expect("reap the orphan");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
    assert_gone(&[lan, pod_ns], &link, &root, &[etc], &[]);
    drop(slot);
}

#[tokio::test(flavor = "multi_thread")]
async fn bed_slots_are_exclusive() {
    let name = "bed_slots_are_exclusive";
    if !prereq::need_root(name) {
        return;
    }
    let bed = Bed::new(name).await;
    assert!(
        bed::net::Slot::take(bed.slot()).is_none(),
        "a slot held by a live bed must not be taken (nor cleaned)"
    );
    assert!(bed::net::link_exists(None, &bed.kernel_names().1));
}

// ----- helpers ------------------------------------------------------------------------------

fn assert_gone(netns: &[String], link: &str, root: &Path, etc: &[std::path::PathBuf], pids: &[i32]) {
    let listed = bed::net::netns_list();
    for ns in netns {
        assert!(!listed.contains(ns), "netns {ns} remains: {listed:?}");
    }
    assert!(!bed::net::link_exists(None, link), "link {link} remains");
    assert!(!root.exists(), "{} remains", root.display());
    for dir in etc {
        assert!(!dir.exists(), "{} remains", dir.display());
    }
    for pid in pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "process {pid} remains");
    }
}

/// A child that must not outlive a failing test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Retry `f` until it gives Some (10 s at most).
async fn poll<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "still None after 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn netns_pids(ns: &str) -> Vec<i32> {
    let out =
        std::process::Command::new("ip").args(["netns", "pids", ns]).output().expect("run ip netns pids");
    String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect()
}

fn targets(ordinals: &[u32], port: u16) -> Vec<(String, u16)> {
    ordinals.iter().map(|i| (format!("{}.", bed::pod_fqdn(*i)), port)).collect()
}

/// One UDP query; the answers' rdata, or the error response code.
async fn query(server: SocketAddr, name: &str, rtype: RecordType) -> Result<Vec<RData>, ResponseCode> {
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).expect("a valid DNS name"), rtype));
    let sock = tokio::net::UdpSocket::bind("0.0.0.0:0").await.expect("bind a UDP socket");
    sock.send_to(&msg.to_vec().expect("encode the query"), server).await.expect("send the query");
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("the DNS server answers within 5 s")
        .expect("receive the answer");
    let resp = Message::from_vec(&buf[..n]).expect("decode the answer");
    if resp.metadata.response_code != ResponseCode::NoError {
        return Err(resp.metadata.response_code);
    }
    Ok(resp.answers.iter().map(|r| r.data.clone()).collect())
}

async fn lookup_a(server: SocketAddr, name: &str) -> Result<Vec<Ipv4Addr>, ResponseCode> {
    let rdata = query(server, name, RecordType::A).await?;
    Ok(rdata
        .into_iter()
        .filter_map(|r| match r {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect())
}

async fn srv_targets(server: SocketAddr, name: &str) -> Vec<(String, u16)> {
    let rdata = query(server, name, RecordType::SRV).await.unwrap_or_else(|rc| panic!("SRV {name}: {rc}"));
    let mut out: Vec<(String, u16)> = rdata
        .into_iter()
        .filter_map(|r| match r {
            RData::SRV(s) => Some((s.target.to_string(), s.port)),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// GET /health over plain HTTP/1.0 with a deadline; the body, if it says healthy.
async fn http_health(ip: Ipv4Addr, timeout: Duration) -> Option<String> {
    let attempt = async {
        let mut conn = tokio::net::TcpStream::connect((ip, 2379)).await.ok()?;
        conn.write_all(b"GET /health HTTP/1.0\r\n\r\n").await.ok()?;
        let mut resp = String::new();
        conn.read_to_string(&mut resp).await.ok()?;
        resp.contains("\"health\":\"true\"").then_some(resp)
    };
    tokio::time::timeout(timeout, attempt).await.ok().flatten()
}

async fn wait_healthy(ip: Ipv4Addr, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(body) = http_health(ip, Duration::from_secs(1)).await {
            return Some(body);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
