//! One container process of a pod: the program as PID 1 of a fresh PID namespace, with its own
//! hostname (UTS namespace), inside the pod's network namespace and a private mount namespace
//! that carries the pod's `/etc/resolv.conf` and `/etc/hosts`, its own `/proc`, and its volume as
//! a mount point.
//!
//! How: a dedicated thread per container calls `unshare(CLONE_NEWPID)` (which changes only that
//! thread's namespace for children), so the child it spawns is PID 1 of a new PID namespace and
//! still OUR child: `wait` gives the program's real exit status, signal deaths included (`unshare
//! --fork` in between would report a SIGKILL death as exit code 1). The child, before exec, takes
//! a new UTS namespace, sets the hostname, and asks for SIGKILL when that thread dies (so a
//! crashed test process takes its pods with it). It then execs
//! `ip netns exec NS /bin/sh -c WRAPPER ...` (`ip netns exec` does not fork: it switches the
//! network namespace, makes a private mount namespace, bind-mounts `/etc/netns/NS/*` over `/etc`
//! and execs), and the wrapper mounts `/proc`, bind-mounts the volume onto itself and execs the
//! program; the PID stays the same throughout. Signals go through a pidfd, so a reaped PID that
//! the kernel hands to someone else is never signalled.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::libc;
use nix::sys::signal::Signal;
use tokio::sync::{oneshot, watch};

/// How a pod's PID 1 ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodExit {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal number (9 for SIGKILL).
    Signal(i32),
}

impl PodExit {
    pub fn success(self) -> bool {
        self == PodExit::Code(0)
    }

    pub fn code(self) -> Option<i32> {
        match self {
            PodExit::Code(c) => Some(c),
            PodExit::Signal(_) => None,
        }
    }

    pub fn signal(self) -> Option<i32> {
        match self {
            PodExit::Code(_) => None,
            PodExit::Signal(s) => Some(s),
        }
    }
}

impl From<std::process::ExitStatus> for PodExit {
    fn from(s: std::process::ExitStatus) -> Self {
        match (s.code(), s.signal()) {
            (Some(c), _) => PodExit::Code(c),
            (None, Some(sig)) => PodExit::Signal(sig),
            (None, None) => PodExit::Code(-1),
        }
    }
}

/// The wrapper run by `/bin/sh -c` as PID 1 before the program: `$0` is the pod name, `$1` the
/// volume, the rest the program and its arguments. Its first line marks it (see `exec_done`).
pub(crate) const WRAPPER: &str = "# ebt-bed pod wrapper
mount -t proc proc /proc || exit 125
mount --bind \"$1\" \"$1\" || exit 125
shift
exec \"$@\"";

/// What to run, where.
pub(crate) struct Launch {
    pub netns: String,
    pub hostname: String,
    pub volume: PathBuf,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub log: File,
}

/// A running (or finished) container: its PID 1 as seen from the root PID namespace.
pub(crate) struct Proc {
    pub pid: i32,
    pidfd: OwnedFd,
    exit: watch::Receiver<Option<PodExit>>,
}

impl Proc {
    /// The exit status, if PID 1 has ended.
    pub fn exit(&self) -> Option<PodExit> {
        *self.exit.borrow()
    }

    /// Wait up to `timeout` for PID 1 to end.
    pub async fn wait(&self, timeout: Duration) -> Option<PodExit> {
        let mut rx = self.exit.clone();
        let exit = match tokio::time::timeout(timeout, rx.wait_for(|e| e.is_some())).await {
            Ok(Ok(e)) => *e,
            // The waiter thread is gone without a status: cannot happen while it reaps.
            Ok(Err(_)) => self.exit(),
            Err(_) => None,
        };
        exit
    }

    /// Blocking wait, for Drop.
    pub fn wait_blocking(&self, timeout: Duration) -> Option<PodExit> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.exit() {
                return Some(e);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Send `sig` to PID 1 (through the pidfd). False when it has already ended.
    pub fn signal(&self, sig: Signal) -> bool {
        // SAFETY: pidfd_send_signal(2) with a pidfd we own, a valid signal and no siginfo.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                sig as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            )
        };
        rc == 0
    }

    /// Whether PID 1 is the program by now (the `ip netns exec` and wrapper stages have exec'd
    /// away). False while it is still one of them, or when it has ended.
    pub fn exec_done(&self) -> bool {
        if self.exit().is_some() {
            return false;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", self.pid)) else {
            return false;
        };
        let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_ip = argv.get(1) == Some(&&b"netns"[..]) && argv.get(2) == Some(&&b"exec"[..]);
        let is_wrapper = argv.get(2) == Some(&WRAPPER.as_bytes());
        !is_ip && !is_wrapper
    }

    /// Wait (polling, up to `timeout`) until PID 1 is the program itself. False on timeout or
    /// when it ended first.
    pub async fn wait_exec(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.exec_done() {
                return true;
            }
            if self.exit().is_some() || Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Start a container; returns its PID 1 handle and the thread that reaps it.
pub(crate) async fn launch(l: Launch) -> std::io::Result<(Arc<Proc>, JoinHandle<()>)> {
    let (started_tx, started_rx) = oneshot::channel::<std::io::Result<(i32, OwnedFd)>>();
    let (exit_tx, exit_rx) = watch::channel(None);
    let thread_name = format!("ebt-{}", l.hostname);
    let thread =
        std::thread::Builder::new().name(thread_name).spawn(move || reaper(l, started_tx, exit_tx))?;
    let (pid, pidfd) = match started_rx.await {
        Ok(Ok(started)) => started,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => {
            let _ = thread.join();
            return Err(std::io::Error::other("the pod's reaper thread died"));
        }
    };
    let proc = Arc::new(Proc { pid, pidfd, exit: exit_rx });
    Ok((proc, thread))
}

/// The dedicated thread: new PID namespace for its children, spawn, report, reap.
fn reaper(
    l: Launch,
    started: oneshot::Sender<std::io::Result<(i32, OwnedFd)>>,
    exit: watch::Sender<Option<PodExit>>,
) {
    // SAFETY: unshare(2) with CLONE_NEWPID alone is allowed in a multi-threaded process and only
    // sets this thread's PID namespace for the children it creates from now on. This thread
    // creates exactly one child and then ends.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        let _ = started.send(Err(std::io::Error::last_os_error()));
        return;
    }
    let ip = which("ip").unwrap_or_else(|| PathBuf::from("ip"));
    let stdout = match l.log.try_clone() {
        Ok(f) => f,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    let mut cmd = Command::new(ip);
    cmd.arg("netns")
        .arg("exec")
        .arg(&l.netns)
        .arg("/bin/sh")
        .arg("-c")
        .arg(WRAPPER)
        .arg(&l.hostname)
        .arg(&l.volume)
        .arg(&l.program)
        .args(&l.args)
        .env_clear()
        .envs(l.env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(l.log);
    let hostname = l.hostname.clone();
    // SAFETY: the closure runs in the forked child before exec and makes only system calls
    // (prctl, unshare, sethostname) on data prepared before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            if libc::unshare(libc::CLONE_NEWUTS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            nix::unistd::sethostname(&hostname)?;
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    let pid = child.id() as i32;
    // SAFETY: pidfd_open(2) on our own unreaped child; the fd returned is ours to own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        let _ = child.kill();
        let _ = child.wait();
        let _ = started.send(Err(e));
        return;
    }
    // SAFETY: fd is a fresh, valid file descriptor returned by pidfd_open.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if started.send(Ok((pid, pidfd))).is_err() {
        // Nobody will ever manage this pod: do not leave it running.
        let _ = child.kill();
    }
    let status = loop {
        match child.wait() {
            Ok(s) => break PodExit::from(s),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("ebt bed: waiting for pod PID {pid} failed: {e}");
                break PodExit::Code(-1);
            }
        }
    };
    exit.send_replace(Some(status));
}

/// Look `name` up on the test process's PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}
