//! Liveness per job: `/healthz` fails only for a job that is really stuck. A job between two
//! passes is alive (it sleeps by its own choice); a job in a pass is alive while the pass is
//! younger than the stall limit, or while it moves bytes (a snapshot streamed from etcd, an
//! upload): a large backup over a slow link takes as long as it takes, and counts as stuck only
//! once no byte has moved for the stall limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One job's heartbeat: when its current pass began, and when bytes last moved in it.
#[derive(Debug)]
pub(crate) struct Beat {
    pub name: &'static str,
    base: Instant,
    /// Milliseconds since `base` + 1 at which the current pass began; 0 between passes.
    busy_since: AtomicU64,
    /// Milliseconds since `base` + 1 at which bytes last moved; 0 never.
    moved_at: AtomicU64,
    /// Bytes moved by this job, all passes together.
    bytes: AtomicU64,
}

impl Beat {
    pub(crate) fn new(name: &'static str) -> Arc<Beat> {
        Arc::new(Beat {
            name,
            base: Instant::now(),
            busy_since: AtomicU64::new(0),
            moved_at: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        })
    }

    fn stamp(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    fn instant(&self, stamp: u64) -> Option<Instant> {
        stamp.checked_sub(1).map(|ms| self.base + Duration::from_millis(ms))
    }

    /// A pass begins.
    pub(crate) fn begin(&self) {
        self.busy_since.store(self.stamp(Instant::now()), Ordering::Relaxed);
    }

    /// The pass ended.
    pub(crate) fn end(&self) {
        self.busy_since.store(0, Ordering::Relaxed);
    }

    /// `n` bytes moved (a chunk of a snapshot from etcd, a part uploaded).
    pub(crate) fn moved(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        self.moved_at.store(self.stamp(Instant::now()), Ordering::Relaxed);
    }

    /// Bytes moved so far.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// How long this job has been stuck at `now`, if it is (see [`stuck_for`]).
    pub(crate) fn stuck(&self, now: Instant, limit: Duration) -> Option<Duration> {
        let busy = self.instant(self.busy_since.load(Ordering::Relaxed));
        let moved = self.instant(self.moved_at.load(Ordering::Relaxed));
        stuck_for(busy, moved, now, limit)
    }
}

/// Whether a job is stuck, and for how long: in a pass that began at `busy_since`, with no bytes
/// moved since `moved_at` (or none at all in this pass), for longer than `limit`. A job between
/// passes is never stuck.
pub(crate) fn stuck_for(
    busy_since: Option<Instant>,
    moved_at: Option<Instant>,
    now: Instant,
    limit: Duration,
) -> Option<Duration> {
    let began = busy_since?;
    let last_sign = moved_at.filter(|m| *m > began).unwrap_or(began);
    let quiet = now.saturating_duration_since(last_sign);
    (quiet > limit).then_some(quiet)
}

/// Every job's heartbeat, and the stall limit they are held to.
#[derive(Debug)]
pub(crate) struct Board {
    pub beats: Vec<Arc<Beat>>,
    pub limit: Duration,
}

impl Board {
    /// The stuck jobs at `now` and for how long, in the order they were registered.
    pub(crate) fn stuck(&self, now: Instant) -> Vec<(&'static str, Duration)> {
        self.beats.iter().filter_map(|b| b.stuck(now, self.limit).map(|d| (b.name, d))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(130);

    #[test]
    fn stuck_only_in_a_pass_with_nothing_moving_for_longer_than_the_limit() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // (busy since, bytes moved at, now, stuck, why)
        type Row = (Option<Instant>, Option<Instant>, Instant, bool, &'static str);
        let rows: [Row; 7] = [
            (None, None, t0 + s(3600), false, "between passes: asleep by choice, alive"),
            (Some(t0), None, t0 + s(100), false, "a pass younger than the limit"),
            (Some(t0), None, t0 + s(131), true, "a pass older than the limit, nothing moved"),
            (Some(t0), Some(t0 + s(300)), t0 + s(400), false, "a long upload whose bytes moved lately"),
            (Some(t0), Some(t0 + s(200)), t0 + s(331), true, "an upload whose bytes stopped moving"),
            (
                Some(t0 + s(500)),
                Some(t0 + s(100)),
                t0 + s(700),
                true,
                "bytes of an earlier pass do not count",
            ),
            (Some(t0 + s(500)), Some(t0 + s(100)), t0 + s(600), false, "a new pass has its own limit"),
        ];
        for (busy, moved, now, stuck, why) in rows {
            assert_eq!(stuck_for(busy, moved, now, LIMIT).is_some(), stuck, "{why}");
        }
    }

    #[test]
    fn a_beat_follows_its_job() {
        let beat = Beat::new("backups");
        let now = Instant::now();
        assert_eq!(beat.stuck(now + Duration::from_secs(1000), LIMIT), None, "never began: alive");
        beat.begin();
        assert!(beat.stuck(Instant::now() + LIMIT + Duration::from_secs(1), LIMIT).is_some());
        beat.moved(4096);
        assert_eq!(beat.bytes(), 4096);
        assert_eq!(beat.stuck(Instant::now() + LIMIT / 2, LIMIT), None, "bytes just moved");
        beat.end();
        assert_eq!(beat.stuck(Instant::now() + LIMIT * 10, LIMIT), None, "pass over: alive");
        let board = Board { beats: vec![Beat::new("a"), beat.clone()], limit: LIMIT };
        beat.begin();
        let stuck = board.stuck(Instant::now() + LIMIT * 2);
        assert_eq!(stuck.iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["backups"]);
    }
}
