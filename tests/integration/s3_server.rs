//! A real S3-protocol server for the backup tests: `s3s-fs` over a local directory, on
//! 127.0.0.1 with a free port, checking SigV4 signatures against one access key and secret (so a
//! wrong secret is really refused). Stopped and reaped when dropped.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key the server accepts.
pub const ACCESS_KEY: &str = "AKIDETCDBOOTSTRAPTEST";
/// The secret the server accepts (a test value; the tests check it never appears in output).
pub const SECRET_KEY: &str = "test-secret-never-printed-3f9a";

const START_DEADLINE: Duration = Duration::from_secs(20);

pub struct S3Server {
    child: Child,
    bin: PathBuf,
    host: Ipv4Addr,
    port: u16,
    pub endpoint: String,
    /// The directory the server keeps buckets in (`<root>/<bucket>/<key>`).
    pub root: PathBuf,
    log: PathBuf,
}

impl S3Server {
    /// Start the server on 127.0.0.1 with `buckets` created, data under `root`.
    pub fn start(bin: &Path, root: &Path, buckets: &[&str]) -> S3Server {
        Self::start_on(bin, root, buckets, Ipv4Addr::LOCALHOST)
    }

    /// [`S3Server::start`] on `host` (the bed's gateway, for pods).
    pub fn start_on(bin: &Path, root: &Path, buckets: &[&str], host: Ipv4Addr) -> S3Server {
        std::fs::create_dir_all(root).expect("create the S3 root");
        for bucket in buckets {
            std::fs::create_dir_all(root.join(bucket)).expect("create a bucket");
        }
        let log = root.with_extension("log");
        // A port free a moment ago can be taken before the server binds it (another test's
        // connection gets it as its source port): then the server says so and exits, and it is
        // started again on another port.
        for attempt in 1.. {
            let port = {
                let listener = TcpListener::bind((host, 0)).expect("bind a free port");
                listener.local_addr().expect("local address").port()
            };
            let log_from = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            let child = spawn(bin, root, &log, host, port);
            let mut server = S3Server {
                child,
                bin: bin.to_path_buf(),
                host,
                port,
                endpoint: format!("http://{host}:{port}"),
                root: root.to_path_buf(),
                log: log.clone(),
            };
            match server.wait_listening(host, port) {
                Ok(()) => return server,
                Err(text) if attempt < 5 && taken_port(&log, log_from) => {
                    eprintln!(
                        "s3s-fs: port {port} was taken before it bound it; another port (attempt {attempt}): {text}"
                    );
                }
                Err(text) => panic!("s3s-fs exited:\n{text}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// Stop the server (SIGKILL): the store is unreachable until [`S3Server::restart`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start the stopped server again, on the same address, with the same data.
    pub fn restart(&mut self) {
        self.child = spawn(&self.bin, &self.root, &self.log, self.host, self.port);
        if let Err(text) = self.wait_listening(self.host, self.port) {
            panic!("s3s-fs exited:\n{text}");
        }
    }

    /// Wait until the server listens; Err with its log if it exited first.
    fn wait_listening(&mut self, host: Ipv4Addr, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("({status}) {}", self.log_text()));
            }
            if TcpStream::connect((host, port)).is_ok() {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "s3s-fs not listening after {START_DEADLINE:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The environment a client of this server uses (keys and endpoint).
    pub fn client_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
            ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
        ]
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Whether what the server logged after `from` bytes of `log` says its port was in use.
fn taken_port(log: &Path, from: u64) -> bool {
    let text = std::fs::read(log).unwrap_or_default();
    let new = text.get(usize::try_from(from).unwrap_or(usize::MAX)..).unwrap_or_default();
    String::from_utf8_lossy(new).contains("Address already in use")
}

fn spawn(bin: &Path, root: &Path, log: &Path, host: Ipv4Addr, port: u16) -> Child {
    let out =
        std::fs::OpenOptions::new().create(true).append(true).open(log).expect("open the S3 server log");
    let err = out.try_clone().expect("clone the log file");
    Command::new(bin)
        .args(["--host", &host.to_string(), "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(root)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()))
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
