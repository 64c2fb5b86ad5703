//! How long the start loop pauses between two looks, and after a refused membership call. Pure.
//!
//! Every pause here is a wait that buys nothing but a lighter load, so each is as short as that
//! allows: a look at DNS costs a few queries, so while initial peers are missing from DNS the loop
//! looks again almost at once (a cold start ends the moment the last record appears); any other
//! WAIT starts as short and doubles while its reason stays the same, up to the old 250 ms poll;
//! a refused call is retried after 100 ms, doubling up to 8 s.

use std::time::Duration;

use crate::identity::url_host;

/// The pause while waiting for DNS of initial peers.
pub(crate) const DNS_POLL: Duration = Duration::from_millis(25);
/// The first pause of any other WAIT.
pub(crate) const WAIT_FIRST: Duration = Duration::from_millis(25);
/// The longest pause of a WAIT whose reason does not change.
pub(crate) const WAIT_CAP: Duration = Duration::from_millis(250);
/// The first backoff after a refused membership call.
pub(crate) const RETRY_BASE: Duration = Duration::from_millis(100);
/// The longest backoff after refused membership calls.
pub(crate) const RETRY_CAP: Duration = Duration::from_secs(8);

/// The longest a NEW start is held for the first initial member's peer port (see [`hold_new`]).
pub(crate) const NEW_HOLD_LIMIT: Duration = Duration::from_secs(1);

/// Whether to hold a NEW start for a moment. etcd's own check at a NEW start asks the other
/// initial members' peer ports for their member list one after the other, in the order of their
/// sorted peer URLs, each for up to 1 s, and stops at the first that answers. A peer whose etcd
/// has opened its listener but is itself still in that check accepts and answers nothing, so
/// members that all start at once wait out a second per such peer (5 s were measured for 7
/// members). So the member whose peer URL sorts first starts at once, and every other one starts
/// once that member's peer port has answered (`answered`: the hosts whose peer ports answered this
/// round): the first question its etcd asks then gets an answer at once. Never longer than
/// [`NEW_HOLD_LIMIT`] (what one unanswered question costs etcd), and not where the peer ports are
/// not asked (`peer_ports`: false).
pub(crate) fn hold_new(
    my_url: &str,
    initial_urls: &[String],
    answered: &[&str],
    held_for: Duration,
    peer_ports: bool,
) -> bool {
    if !peer_ports || held_for >= NEW_HOLD_LIMIT {
        return false;
    }
    let Some(first) = initial_urls.iter().min() else { return false };
    if first == my_url {
        return false;
    }
    url_host(first).is_some_and(|host| !answered.contains(&host))
}

/// `base` doubled `n - 1` times (n is 1-based), capped.
fn doubled(base: Duration, n: u32, cap: Duration) -> Duration {
    let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(cap)
}

/// The pause after the `same`-th WAIT in a row with one reason (1-based); `dns` when that round
/// found initial peers missing from DNS.
pub(crate) fn wait_pause(dns: bool, same: u32) -> Duration {
    if dns {
        DNS_POLL
    } else {
        doubled(WAIT_FIRST, same, WAIT_CAP)
    }
}

/// The pause before the `attempt`-th retry of a refused call (1-based): 100 ms, 200 ms, ... 8 s.
pub(crate) fn retry_delay(attempt: u32) -> Duration {
    doubled(RETRY_BASE, attempt, RETRY_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_waits_poll_fast_and_other_waits_back_off_to_the_old_poll() {
        assert_eq!(wait_pause(true, 1), DNS_POLL);
        assert_eq!(wait_pause(true, 1000), DNS_POLL);
        let ms: Vec<u128> = (1..=6).map(|n| wait_pause(false, n).as_millis()).collect();
        assert_eq!(ms, [25, 50, 100, 200, 250, 250]);
        assert_eq!(wait_pause(false, u32::MAX), WAIT_CAP);
    }

    #[test]
    fn new_waits_only_for_the_first_sorted_initial_member_and_not_for_long() {
        let urls: Vec<String> = (0..3).map(|o| format!("http://etcd-{o}.d:2380")).collect();
        let ms = Duration::from_millis;
        type Case<'a> = (&'a str, &'a str, &'a [&'a str], Duration, bool, bool);
        let cases: [Case; 6] = [
            ("the first member starts at once", "http://etcd-0.d:2380", &[], ms(0), true, false),
            (
                "another holds until the first answers",
                "http://etcd-2.d:2380",
                &["etcd-1.d"],
                ms(30),
                true,
                true,
            ),
            ("and starts once it has", "http://etcd-2.d:2380", &["etcd-0.d"], ms(30), true, false),
            ("for a second at most", "http://etcd-1.d:2380", &[], NEW_HOLD_LIMIT, true, false),
            ("not where peer ports are not asked", "http://etcd-1.d:2380", &[], ms(0), false, false),
            ("just before the limit", "http://etcd-1.d:2380", &[], ms(999), true, true),
        ];
        for (what, me, answered, held, asked, want) in cases {
            assert_eq!(hold_new(me, &urls, answered, held, asked), want, "{what}");
        }
        assert!(!hold_new("http://a:2380", &[], &[], ms(0), true), "no initial cluster");
    }

    #[test]
    fn retry_backoff_doubles_from_100ms_and_is_capped() {
        let ms: Vec<u128> = (1..=9).map(|n| retry_delay(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 6400, 8000, 8000]);
        assert_eq!(retry_delay(u32::MAX), RETRY_CAP);
    }
}
