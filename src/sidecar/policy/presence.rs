//! Between two rounds, the leader's sidecar watches its etcd's peer connections, so that a pod
//! that ends is seen gone from DNS moments after its records go, not at the next round (up to
//! `--interval` later, 10 s by default). Pure: which pods to look up in DNS now.
//!
//! Every [`READ_EVERY`] it reads which peers are connected to the local etcd (from
//! `/proc/net/tcp`, no network). A member's pod whose address has no peer connection is
//! "unconnected"; for [`LOOK_FOR`] after its connections went, its name is looked up every
//! [`LOOK_EVERY`] until DNS says it does not exist, which starts the removal clock
//! ([`super::removal::Clock::start`]). Nothing else changes: the removal is still made by a round,
//! once the name has been absent for `--removal-delay`, after the same checks. A pod whose
//! connections are never seen (a service mesh in between, `/proc` unreadable) is looked up for
//! [`LOOK_FOR`] and then left to the rounds.
//!
//! Reading `/proc/net/tcp` and `/proc/net/tcp6` costs about 4 ms of CPU each whatever the pod
//! holds: the kernel walks its whole table of connections (every namespace's) to show one
//! namespace's. Read ten times a second, that was ~9% of a core on the leader's sidecar for as
//! long as it led. A pod's records go after its etcd stopped, so the connections are read once a
//! second and only the DNS lookups of a pod that just lost its connections are made ten times a
//! second: the clock starts as soon as before, at a tenth of the cost.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How often the peer connections are read while this member leads.
pub(crate) const READ_EVERY: Duration = Duration::from_secs(1);
/// How often the name of a pod that lost its connections is looked up.
pub(crate) const LOOK_EVERY: Duration = Duration::from_millis(100);
/// How long after a pod's connections went its name is looked up at every look: long enough for
/// etcd to stop on SIGTERM and the pod's records to go.
pub(crate) const LOOK_FOR: Duration = Duration::from_secs(5);

/// What the watch knows: the member pods to watch, and since when each has had no connection.
#[derive(Debug, Default)]
pub(crate) struct Presence {
    /// Ordinal -> current address of each member's pod but this one's.
    pods: BTreeMap<u32, IpAddr>,
    unconnected_since: BTreeMap<u32, Instant>,
    /// When the connections were last read.
    last_read: Option<Instant>,
}

impl Presence {
    /// After a round in which this member leads: the pods to watch. A pod whose address changed
    /// starts afresh.
    pub(crate) fn watch(&mut self, pods: BTreeMap<u32, IpAddr>) {
        let old = std::mem::replace(&mut self.pods, pods);
        self.unconnected_since.retain(|o, _| old.get(o).is_some_and(|ip| self.pods.get(o) == Some(ip)));
    }

    /// This member does not lead (or the round saw nothing): watch nothing.
    pub(crate) fn stop(&mut self) {
        *self = Presence::default();
    }

    /// When to look next, if anything is watched: soon while a pod that lost its connections is
    /// being looked up (`missing`: the pods whose clock runs already), else at the next read.
    pub(crate) fn next_look(&self, now: Instant, missing: &BTreeMap<u32, Instant>) -> Option<Instant> {
        if self.pods.is_empty() {
            return None;
        }
        if !self.pending(missing, now).is_empty() {
            return Some(now + LOOK_EVERY);
        }
        Some(self.last_read.map_or(now, |at| at + READ_EVERY))
    }

    /// Whether the connections are to be read at this look.
    pub(crate) fn read_due(&self, now: Instant) -> bool {
        self.last_read.is_none_or(|at| now >= at + READ_EVERY)
    }

    /// The pods to look up in DNS now, given the peers connected to the local etcd when they were
    /// read at this look (None: not read, the last reading stands) and the pods already seen
    /// missing (their clock runs: the rounds take over).
    pub(crate) fn pods_to_look_up(
        &mut self,
        connected: Option<&BTreeSet<IpAddr>>,
        missing: &BTreeMap<u32, Instant>,
        now: Instant,
    ) -> BTreeSet<u32> {
        if let Some(connected) = connected {
            self.last_read = Some(now);
            for (ordinal, ip) in &self.pods {
                if connected.contains(ip) {
                    self.unconnected_since.remove(ordinal);
                } else {
                    self.unconnected_since.entry(*ordinal).or_insert(now);
                }
            }
        }
        self.pending(missing, now)
    }

    /// The pods unconnected for no longer than [`LOOK_FOR`] and not missing yet.
    fn pending(&self, missing: &BTreeMap<u32, Instant>, now: Instant) -> BTreeSet<u32> {
        self.unconnected_since
            .iter()
            .filter(|(o, since)| {
                now.saturating_duration_since(**since) <= LOOK_FOR && !missing.contains_key(o)
            })
            .map(|(o, _)| *o)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_pod_is_looked_up_from_the_moment_its_connections_go_for_a_while() {
        let t0 = Instant::now();
        let mut p = Presence::default();
        assert_eq!(p.next_look(t0, &BTreeMap::new()), None, "nothing watched: no looks");
        p.watch(BTreeMap::from([(1, ip(1)), (2, ip(2))]));
        assert_eq!(p.next_look(t0, &BTreeMap::new()), Some(t0), "never read: now");
        let both = BTreeSet::from([ip(1), ip(2)]);
        let none = BTreeMap::new();
        assert!(p.pods_to_look_up(Some(&both), &none, t0).is_empty(), "both connected: no DNS query");
        let only_1 = BTreeSet::from([ip(1)]);
        assert_eq!(p.pods_to_look_up(Some(&only_1), &none, t0 + LOOK_EVERY), BTreeSet::from([2]));
        assert_eq!(
            p.pods_to_look_up(Some(&only_1), &none, t0 + LOOK_FOR),
            BTreeSet::from([2]),
            "still within LOOK_FOR"
        );
        assert!(
            p.pods_to_look_up(Some(&only_1), &none, t0 + LOOK_EVERY + LOOK_FOR + Duration::from_millis(1))
                .is_empty(),
            "left to the rounds after LOOK_FOR"
        );
        // Back, then gone again: looked up again.
        let later = t0 + Duration::from_secs(60);
        assert!(p.pods_to_look_up(Some(&both), &none, later).is_empty());
        assert_eq!(p.pods_to_look_up(Some(&only_1), &none, later + LOOK_EVERY), BTreeSet::from([2]));
    }

    #[test]
    fn connections_are_read_once_a_second_and_a_pod_that_lost_them_looked_up_ten_times() {
        let t0 = Instant::now();
        let none = BTreeMap::new();
        let mut p = Presence::default();
        p.watch(BTreeMap::from([(1, ip(1))]));
        assert!(p.read_due(t0), "never read");
        assert!(p.pods_to_look_up(Some(&BTreeSet::from([ip(1)])), &none, t0).is_empty());
        assert!(!p.read_due(t0 + LOOK_EVERY), "read a moment ago");
        assert_eq!(p.next_look(t0, &none), Some(t0 + READ_EVERY), "all connected: the next read");
        let t1 = t0 + READ_EVERY;
        assert!(p.read_due(t1));
        assert_eq!(
            p.pods_to_look_up(Some(&BTreeSet::new()), &none, t1),
            BTreeSet::from([1]),
            "its connections went"
        );
        assert_eq!(p.next_look(t1, &none), Some(t1 + LOOK_EVERY), "looked up again soon");
        let t2 = t1 + LOOK_EVERY;
        assert!(!p.read_due(t2), "no read for that");
        assert_eq!(p.pods_to_look_up(None, &none, t2), BTreeSet::from([1]), "looked up without a read");
        let missing = BTreeMap::from([(1, t2)]);
        assert!(p.pods_to_look_up(None, &missing, t2).is_empty(), "gone from DNS: the clock runs");
        assert_eq!(p.next_look(t2, &missing), Some(t1 + READ_EVERY), "back to a read a second");
    }

    #[test]
    fn a_pod_already_missing_is_left_to_the_clock() {
        let t0 = Instant::now();
        let mut p = Presence::default();
        p.watch(BTreeMap::from([(1, ip(1))]));
        let missing = BTreeMap::from([(1, t0)]);
        assert!(p.pods_to_look_up(Some(&BTreeSet::new()), &missing, t0).is_empty());
    }

    #[test]
    fn a_new_address_starts_afresh_and_not_leading_watches_nothing() {
        let t0 = Instant::now();
        let mut p = Presence::default();
        p.watch(BTreeMap::from([(1, ip(1)), (2, ip(2))]));
        let none = BTreeMap::new();
        assert_eq!(p.pods_to_look_up(Some(&BTreeSet::new()), &none, t0), BTreeSet::from([1, 2]));
        // Pod 2 was recreated with a new address, pod 1 kept its own.
        p.watch(BTreeMap::from([(1, ip(1)), (2, ip(22))]));
        let late = t0 + LOOK_FOR + Duration::from_secs(1);
        assert_eq!(p.pods_to_look_up(Some(&BTreeSet::new()), &none, late), BTreeSet::from([2]));
        p.stop();
        assert_eq!(p.next_look(late, &BTreeMap::new()), None);
        assert!(p.pods_to_look_up(Some(&BTreeSet::new()), &none, late).is_empty());
    }
}
