//! How long the start loop pauses between two looks, and after a refused membership call. Pure.
//!
//! Every pause here is a wait that buys nothing but a lighter load, so each is as short as that
//! allows: a look at DNS costs a few queries, so while initial peers are missing from DNS the loop
//! looks again almost at once (a cold start ends the moment the last record appears); any other
//! WAIT starts as short and doubles while its reason stays the same, up to the old 250 ms poll;
//! a refused call is retried after 100 ms, doubling up to 8 s.

use std::time::Duration;

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
    fn retry_backoff_doubles_from_100ms_and_is_capped() {
        let ms: Vec<u128> = (1..=9).map(|n| retry_delay(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 6400, 8000, 8000]);
        assert_eq!(retry_delay(u32::MAX), RETRY_CAP);
    }
}
