//! Between two rounds, the leader's sidecar watches its etcd's peer connections, so that a pod
//! that ends is seen gone from DNS moments after its records go, not at the next round (up to
//! `--interval` later, 10 s by default). Pure: which pods to look up in DNS now.
//!
//! Every [`LOOK_EVERY`] it reads which peers are connected to the local etcd (from
//! `/proc/net/tcp`, no network). A member's pod whose address has no peer connection is
//! "unconnected"; for [`LOOK_FOR`] after its connections went, its name is looked up at each of
//! those looks until DNS says it does not exist, which starts the removal clock
//! ([`super::removal::Clock::start`]). Nothing else changes: the removal is still made by a round,
//! once the name has been absent for `--removal-delay`, after the same checks. A pod whose
//! connections are never seen (a service mesh in between, `/proc` unreadable) is looked up for
//! [`LOOK_FOR`] and then left to the rounds.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How often the peer connections are read while this member leads.
pub const LOOK_EVERY: Duration = Duration::from_millis(100);
/// How long after a pod's connections went its name is looked up at every look: long enough for
/// etcd to stop on SIGTERM and the pod's records to go.
pub const LOOK_FOR: Duration = Duration::from_secs(5);

/// What the watch knows: the member pods to watch, and since when each has had no connection.
#[derive(Debug, Default)]
pub struct Presence {
    /// Ordinal -> current address of each member's pod but this one's.
    pods: BTreeMap<u32, IpAddr>,
    unconnected_since: BTreeMap<u32, Instant>,
}

impl Presence {
    /// After a round in which this member leads: the pods to watch. A pod whose address changed
    /// starts afresh.
    pub fn watch(&mut self, pods: BTreeMap<u32, IpAddr>) {
        let old = std::mem::replace(&mut self.pods, pods);
        self.unconnected_since.retain(|o, _| old.get(o).is_some_and(|ip| self.pods.get(o) == Some(ip)));
    }

    /// This member does not lead (or the round saw nothing): watch nothing.
    pub fn stop(&mut self) {
        *self = Presence::default();
    }

    /// When to look next, if anything is watched.
    pub fn next_look(&self, now: Instant) -> Option<Instant> {
        (!self.pods.is_empty()).then_some(now + LOOK_EVERY)
    }

    /// The pods to look up in DNS now, given the peers connected to the local etcd and the pods
    /// already seen missing (their clock runs: the rounds take over).
    pub fn to_look_up(
        &mut self,
        connected: &BTreeSet<IpAddr>,
        missing: &BTreeMap<u32, Instant>,
        now: Instant,
    ) -> BTreeSet<u32> {
        for (ordinal, ip) in &self.pods {
            if connected.contains(ip) {
                self.unconnected_since.remove(ordinal);
            } else {
                self.unconnected_since.entry(*ordinal).or_insert(now);
            }
        }
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
        assert_eq!(p.next_look(t0), None, "nothing watched: no looks");
        p.watch(BTreeMap::from([(1, ip(1)), (2, ip(2))]));
        assert_eq!(p.next_look(t0), Some(t0 + LOOK_EVERY));
        let both = BTreeSet::from([ip(1), ip(2)]);
        let none = BTreeMap::new();
        assert!(p.to_look_up(&both, &none, t0).is_empty(), "both connected: no DNS query");
        let only_1 = BTreeSet::from([ip(1)]);
        assert_eq!(p.to_look_up(&only_1, &none, t0 + LOOK_EVERY), BTreeSet::from([2]));
        assert_eq!(p.to_look_up(&only_1, &none, t0 + LOOK_FOR), BTreeSet::from([2]), "still within LOOK_FOR");
        assert!(
            p.to_look_up(&only_1, &none, t0 + LOOK_EVERY + LOOK_FOR + Duration::from_millis(1)).is_empty(),
            "left to the rounds after LOOK_FOR"
        );
        // Back, then gone again: looked up again.
        let later = t0 + Duration::from_secs(60);
        assert!(p.to_look_up(&both, &none, later).is_empty());
        assert_eq!(p.to_look_up(&only_1, &none, later + LOOK_EVERY), BTreeSet::from([2]));
    }

    #[test]
    fn a_pod_already_missing_is_left_to_the_clock() {
        let t0 = Instant::now();
        let mut p = Presence::default();
        p.watch(BTreeMap::from([(1, ip(1))]));
        let missing = BTreeMap::from([(1, t0)]);
        assert!(p.to_look_up(&BTreeSet::new(), &missing, t0).is_empty());
    }

    #[test]
    fn a_new_address_starts_afresh_and_not_leading_watches_nothing() {
        let t0 = Instant::now();
        let mut p = Presence::default();
        p.watch(BTreeMap::from([(1, ip(1)), (2, ip(2))]));
        let none = BTreeMap::new();
        assert_eq!(p.to_look_up(&BTreeSet::new(), &none, t0), BTreeSet::from([1, 2]));
        // Pod 2 was recreated with a new address, pod 1 kept its own.
        p.watch(BTreeMap::from([(1, ip(1)), (2, ip(22))]));
        let late = t0 + LOOK_FOR + Duration::from_secs(1);
        assert_eq!(p.to_look_up(&BTreeSet::new(), &none, late), BTreeSet::from([2]));
        p.stop();
        assert_eq!(p.next_look(late), None);
        assert!(p.to_look_up(&BTreeSet::new(), &none, late).is_empty());
    }
}
