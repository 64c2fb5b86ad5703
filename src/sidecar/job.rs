//! The shape every sidecar job has (kube-rs's `reconcile -> Action` and `error_policy`): one pass
//! looks at the world and does at most what its pure policy says, then says when to run again
//! ([`Action`]); a pass that fails is handed to the one [`error_policy`], which says when to try
//! again. Each job runs as its own task ([`run`]), with its own cadence, and wakes early when who
//! leads changes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use crate::error::Error;

use super::coordination::Coordination;
use super::liveness::Beat;
use super::metrics::Shared;

/// When to run a job again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Action {
    /// After this long; None: only once who leads changes.
    pub after: Option<Duration>,
}

impl Action {
    /// Run again after `after` (or sooner, when who leads changes).
    pub(crate) fn requeue(after: Duration) -> Action {
        Action { after: Some(after) }
    }

    /// Run again only once who leads changes.
    pub(crate) fn await_change() -> Action {
        Action { after: None }
    }
}

/// A failed pass, the `failures`-th in a row (1 for the first): try again after one interval,
/// then back off, doubling, to at most [`MAX_BACKOFF_INTERVALS`] intervals, so a store or a member
/// that stays away is not hammered, and one that comes back is used within a few intervals.
pub(crate) fn error_policy(failures: u32, interval: Duration) -> Action {
    let factor = 1u32 << failures.saturating_sub(1).min(MAX_BACKOFF_INTERVALS.trailing_zeros());
    Action::requeue(interval.saturating_mul(factor.min(MAX_BACKOFF_INTERVALS)))
}

/// The longest wait after failures in a row, in intervals (a power of two).
pub(crate) const MAX_BACKOFF_INTERVALS: u32 = 8;

/// One job of the sidecar.
pub(crate) trait Job: Send + 'static {
    /// The job's name, in logs and in `/healthz`.
    const NAME: &'static str;

    /// Its cadence: the interval the error policy counts in.
    fn interval(&self) -> Duration;

    /// One pass.
    fn reconcile(&mut self) -> impl Future<Output = Result<Action, Error>> + Send;

    /// After a failed pass: forget what the failure made stale (a connection, a run of answers).
    fn failed(&mut self) {}

    /// What else wakes the job before its wait is over (another job asking for it), if anything.
    fn wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
}

/// Run `job` until the task is aborted: a pass, then a wait as its [`Action`] (or the error
/// policy) says, cut short when who leads changes. `beat` is its liveness.
pub(crate) async fn run<J: Job>(
    mut job: J,
    coordination: Arc<Coordination>,
    shared: Arc<Shared>,
    beat: Arc<Beat>,
) {
    let mut leadership = coordination.watch_leadership();
    let wake = job.wake();
    let mut failures = 0u32;
    loop {
        leadership.borrow_and_update();
        beat.begin();
        let outcome = job.reconcile().await;
        beat.end();
        let action = match outcome {
            Ok(action) => {
                failures = 0;
                action
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                job.failed();
                let action = error_policy(failures, job.interval());
                let again = action.after.map(crate::duration::format).unwrap_or_default();
                warn!(job = J::NAME, failures, "{e}; trying again in {again}");
                shared.lock().error(&e.to_string());
                action
            }
        };
        let sleep = async {
            match action.after {
                Some(after) => tokio::time::sleep(after).await,
                None => std::future::pending().await,
            }
        };
        let asked = async {
            match &wake {
                Some(wake) => wake.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = asked => {}
            changed = leadership.changed() => {
                if changed.is_err() {
                    // The state is gone: the sidecar is ending.
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_policy_backs_off_to_eight_intervals() {
        let interval = Duration::from_secs(10);
        // (failures in a row, wait in seconds)
        let rows = [(1, 10), (2, 20), (3, 40), (4, 80), (5, 80), (100, 80), (u32::MAX, 80)];
        for (failures, secs) in rows {
            assert_eq!(
                error_policy(failures, interval),
                Action::requeue(Duration::from_secs(secs)),
                "{failures} failures in a row"
            );
        }
        assert_eq!(error_policy(0, interval), Action::requeue(interval), "never less than one interval");
    }

    struct Counting {
        passes: Arc<std::sync::atomic::AtomicU32>,
        fail: bool,
    }

    impl Job for Counting {
        const NAME: &'static str = "counting";
        fn interval(&self) -> Duration {
            Duration::from_secs(3600)
        }
        async fn reconcile(&mut self) -> Result<Action, Error> {
            self.passes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if self.fail {
                return Err(Error::Runtime("boom".into()));
            }
            Ok(Action::await_change())
        }
    }

    struct Woken {
        passes: Arc<std::sync::atomic::AtomicU32>,
        wake: Arc<tokio::sync::Notify>,
    }

    impl Job for Woken {
        const NAME: &'static str = "woken";
        fn interval(&self) -> Duration {
            Duration::from_secs(3600)
        }
        async fn reconcile(&mut self) -> Result<Action, Error> {
            self.passes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Action::requeue(Duration::from_secs(3600)))
        }
        fn wake(&self) -> Option<Arc<tokio::sync::Notify>> {
            Some(self.wake.clone())
        }
    }

    #[tokio::test]
    async fn a_job_asked_for_by_another_runs_at_once() {
        use crate::observe::cluster::Access;
        let coordination = Arc::new(Coordination::new(Access::default()));
        let passes = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let wake = Arc::new(tokio::sync::Notify::new());
        let job = Woken { passes: passes.clone(), wake: wake.clone() };
        let task = tokio::spawn(run(job, coordination, Arc::new(Shared::new()), Beat::new("woken")));
        let count = || passes.load(std::sync::atomic::Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while count() < 1 {
            assert!(tokio::time::Instant::now() < deadline, "no first pass");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Asked for: the hour's wait is cut short.
        wake.notify_one();
        while count() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "the request did not wake the job");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
    }

    #[tokio::test]
    async fn a_job_waits_as_told_and_wakes_when_who_leads_changes() {
        use crate::observe::cluster::Access;
        use crate::sidecar::coordination::Leadership;
        let coordination = Arc::new(Coordination::new(Access::default()));
        let shared = Arc::new(Shared::new());
        let passes = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let job = Counting { passes: passes.clone(), fail: true };
        let beat = Beat::new("counting");
        let task = tokio::spawn(run(job, coordination.clone(), shared.clone(), beat));
        let count = || passes.load(std::sync::atomic::Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while count() < 1 {
            assert!(tokio::time::Instant::now() < deadline, "no first pass");
            tokio::task::yield_now().await;
        }
        assert_eq!(shared.lock().errors, 1, "a failed pass is counted");
        coordination.set_leadership(Leadership::Local(1));
        while count() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "a change of leader did not wake the job");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
    }
}
