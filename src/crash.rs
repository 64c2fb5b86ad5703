//! Test-only crash points: with the `crash-points` feature (never in release builds), the process
//! ends abruptly right after the named step when `ETCD_BOOTSTRAP_TEST_CRASH_AFTER` names it, so
//! tests can prove that a restart converges from every intermediate state.

/// End the process here if the test asked for a crash after `step`.
#[cfg(feature = "crash-points")]
pub(crate) fn point(step: &str) {
    if std::env::var("ETCD_BOOTSTRAP_TEST_CRASH_AFTER").is_ok_and(|v| v == step) {
        eprintln!("etcd-bootstrap: crash point {step}: exiting abruptly (test build)");
        // PID 1 ignores SIGKILL sent from inside its namespace; exit without cleanup instead.
        std::process::exit(137);
    }
}

/// Release builds: no crash points.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub(crate) fn point(_step: &str) {}
