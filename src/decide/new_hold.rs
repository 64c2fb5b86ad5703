//! The NEW start hold: a moment's wait before a NEW start so that etcd's own bootstrap check
//! gets an answer at once. Pure: the time held so far comes in as data.

use std::time::Duration;

use crate::identity::url_host;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
