//! The decision table of the README ("How it decides"), one section per row, named and
//! introduced with the row's own words, holding the row's case and the edges around it. The
//! static bootstrap detail: etcd names every initial member before it runs, so a late initial
//! member must not mistake its own never-served entry for a lost volume.

use super::*;
use crate::observed::{Heard, PeerList};

const MY_URL: &str = "http://etcd-1.etcd.default.svc.cluster.local:2380";
const CLUSTER: u64 = 0xc1;
const ME_ID: u64 = 0x11;

const TOKEN: &str = "etcd-bootstrap-default-etcd";

fn static_id(url: &str) -> u64 {
    crate::observed::static_member_id(&[url.to_string()], TOKEN)
}

fn me() -> Me {
    Me { name: "etcd-1".into(), ordinal: 1, peer_url: MY_URL.into(), static_id: static_id(MY_URL) }
}

/// A member; one with a name has served (published client URLs), as after a real start.
fn member(id: u64, name: &str, url: &str) -> Member {
    let client_urls = if name.is_empty() { vec![] } else { vec![url.replace(":2380", ":2379")] };
    Member { id, name: name.into(), peer_urls: vec![url.into()], client_urls, is_learner: false }
}

/// An entry of a static initial cluster that has not served yet: named, no client URLs.
fn static_entry(name: &str, url: &str) -> Member {
    Member {
        id: static_id(url),
        name: name.into(),
        peer_urls: vec![url.into()],
        client_urls: vec![],
        is_learner: false,
    }
}

/// The host name of pod `ordinal`, as an answer names who gave it.
fn host(ordinal: u32) -> String {
    format!("etcd-{ordinal}.etcd.default.svc.cluster.local")
}

fn peer(ordinal: u32) -> String {
    format!("http://etcd-{ordinal}.etcd.default.svc.cluster.local:2380")
}

fn three_started() -> Vec<Member> {
    vec![member(0x10, "etcd-0", &peer(0)), member(ME_ID, "etcd-1", MY_URL), member(0x12, "etcd-2", &peer(2))]
}

fn answer(members: Vec<Member>, quorum: bool) -> ClusterView {
    ClusterView::Answer { endpoint: host(0), cluster_id: CLUSTER, members, quorum }
}

fn no_answer() -> ClusterView {
    ClusterView::NoAnswer { tried: vec![("http://10.0.0.2:2379".into(), "timeout".into())] }
}

fn has_data(member_id: u64) -> DataDirState {
    DataDirState::Member(WalMeta { member_id, cluster_id: CLUSTER })
}

fn settings() -> DecisionSettings {
    DecisionSettings { initial_cluster_size: 3, join_as: JoinAs::Voter }
}

fn run(data: DataDirState, cluster: ClusterView, peers: PeerDns) -> Verdict {
    run_as(&me(), data, cluster, peers, settings())
}

fn run_as(
    me: &Me,
    data: DataDirState,
    cluster: ClusterView,
    peers: PeerDns,
    settings: DecisionSettings,
) -> Verdict {
    decide(
        &Observation { me, data: &data, cluster: &cluster, heard: &Heard::default(), peers: &peers },
        &settings,
    )
}

fn all_resolve() -> PeerDns {
    PeerDns::default()
}

/// Row: anything else (not etcd data) | - | - | REFUSE
mod anything_else_not_etcd_data_refuse {
    use super::*;

    #[test]
    fn unknown_data_dir_is_refused_naming_entries() {
        let data = DataDirState::Unknown { entries: vec!["notes.txt".into()] };
        let v = run(data, answer(three_started(), true), all_resolve());
        assert_eq!(v.decision, Decision::Refuse);
        assert!(v.reason.contains("notes.txt"));
    }
}

/// Row: has data | nobody answers, or no quorum (same cluster ID) | my member ID is listed, or no list came | EXISTING
mod has_data_nobody_answers_or_no_quorum_existing {
    use super::*;

    #[test]
    fn data_and_nobody_answers_is_existing() {
        let v = run(has_data(ME_ID), no_answer(), all_resolve());
        assert_eq!(v.decision, Decision::Existing { update_peer_urls: None }, "{}", v.reason);
    }

    #[test]
    fn data_and_no_quorum_listing_my_member_is_existing() {
        let v = run(has_data(ME_ID), answer(three_started(), false), all_resolve());
        assert_eq!(v.decision, Decision::Existing { update_peer_urls: None }, "{}", v.reason);
        assert!(v.reason.contains("brings quorum back"), "{}", v.reason);
    }

    #[test]
    fn data_and_never_started_cluster_is_existing() {
        // A restart during the initial bootstrap: the others answer serializably, no quorum yet.
        let members = vec![member(0x10, "", &peer(0)), member(ME_ID, "", MY_URL)];
        let v = run(has_data(ME_ID), answer(members, false), all_resolve());
        assert_eq!(v.decision, Decision::Existing { update_peer_urls: None });
    }
}

/// Row: has data | no quorum (same cluster ID) | my member ID is not listed by any answer | WAIT
mod has_data_no_quorum_my_member_id_is_not_listed_wait {
    use super::*;

    #[test]
    fn data_not_listed_by_an_answer_without_quorum_waits_and_is_never_archived_or_started() {
        // A removed member started on its data is refused by its peers and etcd exits; a list
        // without quorum may also predate this member's add. Neither STALE nor EXISTING: wait.
        let members = vec![member(0x10, "etcd-0", &peer(0))];
        let v = run(has_data(ME_ID), answer(members, false), all_resolve());
        assert_eq!(v.decision, Decision::Wait, "{}", v.reason);
        assert!(v.reason.contains("11") && v.reason.contains("quorum"), "{}", v.reason);
    }

    #[test]
    fn a_peer_list_that_names_my_member_outweighs_one_that_lags_behind_its_add() {
        let lagging =
            list(0, CLUSTER, vec![member(0x10, "etcd-0", &peer(0)), member(0x12, "etcd-2", &peer(2))]);
        let current = list(2, CLUSTER, three_started());
        for heard in [lists(vec![lagging.clone(), current.clone()]), lists(vec![current, lagging])] {
            let v = run_heard(has_data(ME_ID), no_answer(), heard);
            assert_eq!(v.decision, Decision::Existing { update_peer_urls: None }, "{}", v.reason);
        }
    }

    #[test]
    fn only_peer_ports_that_do_not_name_my_member_wait() {
        let heard = lists(vec![list(0, CLUSTER, vec![member(0x10, "etcd-0", &peer(0))])]);
        let v = run_heard(has_data(ME_ID), no_answer(), heard);
        assert_eq!(v.decision, Decision::Wait, "{}", v.reason);
        assert!(v.reason.contains("peer port"), "{}", v.reason);
    }
}

/// Row: has data | quorum, same cluster ID | my member ID is listed | EXISTING
mod has_data_quorum_my_member_id_is_listed_existing {
    use super::*;

    #[test]
    fn data_and_listed_is_existing() {
        let v = run(has_data(ME_ID), answer(three_started(), true), all_resolve());
        assert_eq!(v.decision, Decision::Existing { update_peer_urls: None });
    }

    #[test]
    fn data_listed_with_old_peer_url_is_existing_with_update() {
        let mut members = three_started();
        members[1].peer_urls = vec!["http://10.0.0.9:2380".into()];
        let v = run(has_data(ME_ID), answer(members, true), all_resolve());
        assert_eq!(v.decision, Decision::Existing { update_peer_urls: Some(ME_ID) });
        assert!(v.reason.contains("10.0.0.9"), "{}", v.reason);
    }

    /// A learner's peer URL is never updated (etcd-io/etcd#21694: the update clears its learner
    /// flag): WAIT until it is promoted, naming both URLs. Promoted, it is updated as any member.
    #[test]
    fn a_learner_listed_with_old_peer_url_waits_until_promoted_and_is_never_updated() {
        let rows: [(&str, bool, &str, Decision); 4] = [
            ("learner, URL changed", true, "http://10.0.0.9:2380", Decision::Wait),
            ("learner, same URL", true, MY_URL, Decision::Existing { update_peer_urls: None }),
            (
                "promoted, URL changed",
                false,
                "http://10.0.0.9:2380",
                Decision::Existing { update_peer_urls: Some(ME_ID) },
            ),
            ("promoted, same URL", false, MY_URL, Decision::Existing { update_peer_urls: None }),
        ];
        for (what, learner, url, want) in rows {
            let mut members = three_started();
            members[1].is_learner = learner;
            members[1].peer_urls = vec![url.into()];
            let v = run(has_data(ME_ID), answer(members, true), all_resolve());
            assert_eq!(v.decision, want, "{what}: {}", v.reason);
            if want == Decision::Wait {
                for needle in ["is a learner", "10.0.0.9", MY_URL, "until it is promoted", "#21694"] {
                    assert!(v.reason.contains(needle), "{what}: no {needle:?} in {}", v.reason);
                }
            }
        }
    }
}

/// Row: has data | quorum, same cluster ID | my member ID is not listed | STALE
mod has_data_quorum_my_member_id_is_not_listed_stale {
    use super::*;

    #[test]
    fn data_not_listed_with_quorum_is_stale() {
        let members = vec![member(0x10, "etcd-0", &peer(0)), member(0x12, "etcd-2", &peer(2))];
        let v = run(has_data(ME_ID), answer(members, true), all_resolve());
        assert_eq!(v.decision, Decision::Stale { member_id: ME_ID });
    }

    #[test]
    fn data_replaced_by_a_new_member_with_my_name_is_stale() {
        // My pod was replaced (new member ID, same name): my old data is stale.
        let mut members = three_started();
        members[1].id = 0x99;
        let v = run(has_data(ME_ID), answer(members, true), all_resolve());
        assert_eq!(v.decision, Decision::Stale { member_id: ME_ID });
    }
}

/// Row: has data | answers (client or peer port, quorum or not), none names my cluster ID | - | REFUSE
mod has_data_answers_none_names_my_cluster_id_refuse {
    use super::*;

    #[test]
    fn data_from_another_cluster_is_refused_naming_both_ids() {
        let data = DataDirState::Member(WalMeta { member_id: ME_ID, cluster_id: 0xdead });
        let v = run(data, answer(three_started(), true), all_resolve());
        assert_eq!(v.decision, Decision::Refuse);
        assert!(v.reason.contains("dead") && v.reason.contains("c1"), "{}", v.reason);
    }
}

/// Row: empty | nobody answers, or never started | - | NEW
mod empty_nobody_answers_or_never_started_new {
    use super::*;

    #[test]
    fn empty_nobody_answers_all_resolve_is_new() {
        assert_eq!(run(DataDirState::Empty, no_answer(), all_resolve()).decision, Decision::New);
    }

    #[test]
    fn empty_never_started_cluster_is_new() {
        // Pod 0 started first and waits for its first quorum: pods 1 and 2 must not wait for it.
        let members = vec![member(0x10, "", &peer(0)), member(ME_ID, "", MY_URL), member(0x12, "", &peer(2))];
        assert_eq!(run(DataDirState::Empty, answer(members, false), all_resolve()).decision, Decision::New);
    }

    #[test]
    fn empty_waits_for_dns_of_initial_peers() {
        let peers = PeerDns {
            unresolved_initial: vec!["etcd-2.etcd.default.svc.cluster.local".into()],
            ..Default::default()
        };
        let v = run(DataDirState::Empty, no_answer(), peers);
        assert_eq!(v.decision, Decision::Wait);
        assert!(v.reason.contains("etcd-2.etcd"), "{}", v.reason);
    }

    #[test]
    fn empty_waits_when_pods_beyond_initial_set_exist() {
        let peers = PeerDns {
            beyond_initial: vec!["etcd-3.etcd.default.svc.cluster.local".into()],
            ..Default::default()
        };
        let v = run(DataDirState::Empty, no_answer(), peers);
        assert_eq!(v.decision, Decision::Wait);
        assert!(v.reason.contains("etcd-3"), "{}", v.reason);
    }

    #[test]
    fn empty_beyond_initial_size_waits_when_nobody_answers() {
        let me = Me { name: "etcd-3".into(), ordinal: 3, peer_url: peer(3), static_id: static_id(&peer(3)) };
        let v = run_as(&me, DataDirState::Empty, no_answer(), all_resolve(), settings());
        assert_eq!(v.decision, Decision::Wait);
    }
}

/// Row: empty | any answer | my own static entry, never served (same peer URL and ID) | NEW
mod empty_any_answer_my_own_static_entry_new {
    use super::*;

    #[test]
    fn empty_with_my_never_served_static_entry_and_quorum_is_new() {
        let members = vec![
            member(0x10, "etcd-0", &peer(0)),
            static_entry("etcd-1", MY_URL),
            member(0x12, "etcd-2", &peer(2)),
        ];
        let v = run(DataDirState::Empty, answer(members, true), all_resolve());
        assert_eq!(v.decision, Decision::New, "{}", v.reason);
    }

    #[test]
    fn empty_with_my_never_served_static_entry_without_quorum_is_new_where_enough_voters_agree() {
        // Without quorum, lists from ceil(3/2) = 2 of the other voters must agree: every
        // majority that could have committed my entry's start holds one of them.
        let members = vec![
            member(0x10, "etcd-0", &peer(0)),
            static_entry("etcd-1", MY_URL),
            static_entry("etcd-2", &peer(2)),
        ];
        let heard = lists(vec![list(2, CLUSTER, members.clone())]);
        let v = run_heard(DataDirState::Empty, answer(members, false), heard);
        assert_eq!(v.decision, Decision::New, "{}", v.reason);
    }

    // Found in review (issue 18): one list without quorum may lag behind my entry's start. An
    // empty volume that started NEW on it would be a member that forgot what it acknowledged.
    #[test]
    fn one_list_without_quorum_is_not_trusted_for_my_entry_never_served() {
        let members = vec![
            member(0x10, "etcd-0", &peer(0)),
            static_entry("etcd-1", MY_URL),
            member(0x12, "etcd-2", &peer(2)),
        ];
        let v = run_heard(DataDirState::Empty, no_answer(), lists(vec![list(0, CLUSTER, members.clone())]));
        assert_eq!(v.decision, Decision::Wait, "{}", v.reason);
        assert!(v.reason.contains("1 of the 3 voting members") && v.reason.contains("lags"), "{}", v.reason);
        // A second list that shows my entry served settles it: never NEW.
        let mut served = members.clone();
        served[1] = member(static_id(MY_URL), "etcd-1", MY_URL);
        let heard = lists(vec![list(0, CLUSTER, members), list(2, CLUSTER, served)]);
        let v = run_heard(DataDirState::Empty, no_answer(), heard);
        assert_eq!(v.decision, Decision::Wait, "{}", v.reason);
    }

    #[test]
    fn my_static_entry_still_waits_for_dns_of_initial_peers() {
        let members = vec![
            member(0x10, "etcd-0", &peer(0)),
            static_entry("etcd-1", MY_URL),
            member(0x12, "etcd-2", &peer(2)),
        ];
        let peers = PeerDns {
            unresolved_initial: vec!["etcd-2.etcd.default.svc.cluster.local".into()],
            ..Default::default()
        };
        assert_eq!(run(DataDirState::Empty, answer(members, true), peers).decision, Decision::Wait);
    }

    #[test]
    fn static_entry_of_a_pod_beyond_the_initial_size_is_not_new() {
        let me = Me { name: "etcd-3".into(), ordinal: 3, peer_url: peer(3), static_id: static_id(&peer(3)) };
        let members = vec![member(0x10, "etcd-0", &peer(0)), static_entry("etcd-3", &peer(3))];
        let v = run_as(&me, DataDirState::Empty, answer(members, true), all_resolve(), settings());
        assert!(matches!(v.decision, Decision::Join { reuse: Some(_), .. }), "{v:?}");
    }
}

/// Row: empty | started members, quorum or not | another never-served entry with my peer URL | JOIN
mod empty_another_never_served_entry_with_my_peer_url_join_reusing_that_entry {
    use super::*;

    #[test]
    fn empty_with_my_unstarted_entry_reuses_it() {
        let mut members = three_started();
        members[1] = member(0x77, "", MY_URL);
        let v = run(DataDirState::Empty, answer(members, true), all_resolve());
        assert_eq!(v.decision, Decision::Join { reuse: Some(0x77), as_learner: false });
    }

    // Found by the chaos run (seed 5304): a 1 -> 2 scale-up whose new pod was killed right after its
    // `member add`. The second voter is needed for quorum from the moment it is added, so waiting for
    // quorum before reusing the entry waited forever.
    #[test]
    fn my_unstarted_entry_is_reused_without_quorum_after_a_kill_between_add_and_start() {
        // Two voters, one of them mine: the other one's list meets every majority.
        let members = vec![member(0x10, "etcd-0", &peer(0)), member(0x77, "", MY_URL)];
        let v = run(DataDirState::Empty, answer(members, false), all_resolve());
        assert_eq!(v.decision, Decision::Join { reuse: Some(0x77), as_learner: false }, "{}", v.reason);
        assert!(v.reason.contains("no quorum"), "{}", v.reason);
    }

    // Found in review (issue 18): a list without quorum from one of three other voters may lag
    // behind my entry's start; reusing the entry would start a member that forgot its writes.
    #[test]
    fn my_unstarted_entry_from_too_few_lists_without_quorum_waits() {
        let mut members = three_started();
        members[1] = member(0x77, "", MY_URL);
        members.push(member(0x13, "etcd-3", &peer(3)));
        let v = run(DataDirState::Empty, answer(members.clone(), false), all_resolve());
        assert_eq!(v.decision, Decision::Wait, "{}", v.reason);
        assert!(v.reason.contains("never reuse"), "{}", v.reason);
        let heard = lists(vec![list(2, CLUSTER, members.clone())]);
        let v = run_heard(DataDirState::Empty, answer(members, false), heard);
        assert_eq!(v.decision, Decision::Join { reuse: Some(0x77), as_learner: false }, "{}", v.reason);
    }

    #[test]
    fn reused_learner_entry_joins_as_learner() {
        let mut members = three_started();
        members[1] = Member { is_learner: true, ..member(0x77, "", MY_URL) };
        let v = run(DataDirState::Empty, answer(members, true), all_resolve());
        assert_eq!(v.decision, Decision::Join { reuse: Some(0x77), as_learner: true });
    }

    #[test]
    fn never_served_entry_with_my_url_but_another_id_is_reused_by_join() {
        // Same URL, different ID (another token, or added by `member add`): JOIN as that member.
        let mut entry = static_entry("etcd-1", MY_URL);
        entry.id = 0x5151;
        let members = vec![member(0x10, "etcd-0", &peer(0)), entry, member(0x12, "etcd-2", &peer(2))];
        let v = run(DataDirState::Empty, answer(members, true), all_resolve());
        assert_eq!(v.decision, Decision::Join { reuse: Some(0x5151), as_learner: false });
    }
}

/// Row: empty | started members, no quorum (or only peer ports answer for a cluster that has served) | - | WAIT
mod empty_started_members_no_quorum_wait {
    use super::*;

    #[test]
    fn empty_with_started_members_without_quorum_waits() {
        let members = vec![member(0x10, "etcd-0", &peer(0)), member(0x12, "etcd-2", &peer(2))];
        let v = run(DataDirState::Empty, answer(members, false), all_resolve());
        assert_eq!(v.decision, Decision::Wait);
        assert!(v.reason.contains("quorum"), "{}", v.reason);
    }

    #[test]
    fn two_members_one_lost_volume_names_the_recovery() {
        let members = vec![member(0x10, "etcd-0", &peer(0)), member(ME_ID, "etcd-1", MY_URL)];
        let v = run(DataDirState::Empty, answer(members, false), all_resolve());
        assert_eq!(v.decision, Decision::Wait);
        assert!(v.reason.contains("cannot return") && v.reason.contains("snapshot"), "{}", v.reason);
    }
}

/// Row: empty | quorum | a served entry with my name or peer URL | REPLACE
mod empty_quorum_a_served_entry_with_my_name_or_peer_url_replace {
    use super::*;

    #[test]
    fn empty_with_my_started_entry_is_replace() {
        let v = run(DataDirState::Empty, answer(three_started(), true), all_resolve());
        assert_eq!(v.decision, Decision::Replace { remove: ME_ID });
    }

    #[test]
    fn replace_matches_by_peer_url_too() {
        let mut members = three_started();
        members[1].name = "renamed".into();
        let v = run(DataDirState::Empty, answer(members, true), all_resolve());
        assert_eq!(v.decision, Decision::Replace { remove: ME_ID });
    }
}

/// Row: empty | quorum | another member never served or a learner | WAIT
mod empty_quorum_another_member_never_served_or_a_learner_wait {
    use super::*;

    #[test]
    fn empty_waits_while_another_member_is_unstarted() {
        let mut members = three_started();
        members.remove(1);
        members.push(member(0x33, "", &peer(3)));
        let v = run(DataDirState::Empty, answer(members, true), all_resolve());
        assert_eq!(v.decision, Decision::Wait);
        assert!(v.reason.contains("one at a time"), "{}", v.reason);
    }

    #[test]
    fn empty_waits_while_another_member_is_a_learner() {
        let mut members = three_started();
        members.remove(1);
        members.push(Member { is_learner: true, ..member(0x33, "etcd-3", &peer(3)) });
        let v = run(DataDirState::Empty, answer(members, true), all_resolve());
        assert_eq!(v.decision, Decision::Wait);
        assert!(v.reason.contains("learner"), "{}", v.reason);
    }

    #[test]
    fn another_never_served_static_entry_makes_a_joiner_wait() {
        let me = Me { name: "etcd-3".into(), ordinal: 3, peer_url: peer(3), static_id: static_id(&peer(3)) };
        let members = vec![
            member(0x10, "etcd-0", &peer(0)),
            member(0x11, "etcd-1", &peer(1)),
            static_entry("etcd-2", &peer(2)),
        ];
        let v = run_as(&me, DataDirState::Empty, answer(members, true), all_resolve(), settings());
        assert_eq!(v.decision, Decision::Wait, "{}", v.reason);
    }
}

/// Row: empty | quorum | none of the above | JOIN
mod empty_quorum_none_of_the_above_join {
    use super::*;

    #[test]
    fn empty_unknown_to_cluster_with_quorum_joins_as_voter() {
        let mut members = three_started();
        members.remove(1);
        let v = run(DataDirState::Empty, answer(members, true), all_resolve());
        assert_eq!(v.decision, Decision::Join { reuse: None, as_learner: false });
    }

    #[test]
    fn join_as_learner_setting_is_honoured() {
        let mut members = three_started();
        members.remove(1);
        let learner = DecisionSettings { join_as: JoinAs::Learner, ..settings() };
        let v = run_as(&me(), DataDirState::Empty, answer(members, true), all_resolve(), learner);
        assert_eq!(v.decision, Decision::Join { reuse: None, as_learner: true });
    }

    #[test]
    fn scale_up_pod_joins_even_beyond_initial_size() {
        let me = Me { name: "etcd-3".into(), ordinal: 3, peer_url: peer(3), static_id: static_id(&peer(3)) };
        let mut members = three_started();
        members[1] = member(ME_ID, "etcd-1", &peer(1));
        let peers = PeerDns {
            beyond_initial: vec!["etcd-3.etcd.default.svc.cluster.local".into()],
            ..Default::default()
        };
        let v = run_as(&me, DataDirState::Empty, answer(members, true), peers, settings());
        assert_eq!(v.decision, Decision::Join { reuse: None, as_learner: false });
    }
}

/// Not a row: after my own `member add`, another never-started member: exactly one of two concurrent joiners withdraws.
mod after_my_add {
    use super::*;

    fn ordinal_of(m: &Member) -> Option<u32> {
        let host = m.peer_urls.first()?.split("://").nth(1)?.split('.').next()?;
        host.strip_prefix("etcd-")?.parse().ok()
    }

    #[test]
    fn after_add_alone_starts() {
        let mut members = three_started();
        members.push(member(0x33, "", &peer(3)));
        assert_eq!(after_add(0x33, &members, ordinal_of), AfterAdd::Start);
    }

    #[test]
    fn after_add_with_a_lower_concurrent_joiner_withdraws() {
        let mut members = three_started();
        members.push(member(0x44, "", &peer(4)));
        members.push(member(0x33, "", &peer(3)));
        assert_eq!(after_add(0x44, &members, ordinal_of), AfterAdd::Withdraw { other: 0x33 });
        assert_eq!(after_add(0x33, &members, ordinal_of), AfterAdd::Hold { other: 0x44 });
    }

    #[test]
    fn after_add_ignores_learners_that_served_and_ranks_foreign_members_last() {
        let mut members = three_started();
        members.push(Member { is_learner: true, ..member(0x55, "etcd-5", &peer(5)) });
        members.push(member(0x99, "", "http://elsewhere:2380"));
        members.push(member(0x33, "", &peer(3)));
        assert_eq!(after_add(0x33, &members, ordinal_of), AfterAdd::Hold { other: 0x99 });
        assert_eq!(after_add(0x99, &members, ordinal_of), AfterAdd::Withdraw { other: 0x33 });
    }

    #[test]
    fn after_add_without_my_entry_starts_with_what_it_has() {
        assert_eq!(after_add(0x77, &three_started(), ordinal_of), AfterAdd::Start);
    }
}

// ----- Every answer counts: cluster IDs from any port, and the peer port's member lists --------

const OTHER: u64 = 0xdead;

fn run_heard(data: DataDirState, cluster: ClusterView, heard: Heard) -> Verdict {
    let (me, peers) = (me(), all_resolve());
    decide(
        &Observation { me: &me, data: &data, cluster: &cluster, heard: &heard, peers: &peers },
        &settings(),
    )
}

fn list(ordinal: u32, cluster_id: u64, members: Vec<Member>) -> PeerList {
    PeerList { host: format!("etcd-{ordinal}.etcd.default.svc.cluster.local"), cluster_id, members }
}

fn lists(lists: Vec<PeerList>) -> Heard {
    Heard { clients: vec![], peer_lists: lists }
}

/// The initial static members, never served (a bootstrap before its first quorum).
fn three_static() -> Vec<Member> {
    vec![static_entry("etcd-0", &peer(0)), static_entry("etcd-1", MY_URL), static_entry("etcd-2", &peer(2))]
}

// Row: has data | answers without quorum, none names my cluster ID | REFUSE. Found from outside
// the project: a foreign volume started while its peers were between leaders.
#[test]
fn data_of_another_cluster_is_refused_when_the_answer_has_no_quorum() {
    let foreign = ClusterView::Answer {
        endpoint: "etcd-0.etcd.default.svc.cluster.local".into(),
        cluster_id: CLUSTER,
        members: three_started(),
        quorum: false,
    };
    let data = DataDirState::Member(WalMeta { member_id: 0xc602, cluster_id: OTHER });
    let v = run_heard(data, foreign, Heard::default());
    assert_eq!(v.decision, Decision::Refuse, "{}", v.reason);
    assert!(v.reason.contains("dead") && v.reason.contains("c1") && v.reason.contains("another cluster"));
}

#[test]
fn data_of_another_cluster_is_refused_when_only_peer_ports_answer() {
    let data = DataDirState::Member(WalMeta { member_id: 0xc602, cluster_id: OTHER });
    let heard = lists(vec![list(0, CLUSTER, three_started()), list(2, CLUSTER, three_started())]);
    let v = run_heard(data, no_answer(), heard);
    assert_eq!(v.decision, Decision::Refuse, "{}", v.reason);
    assert!(v.reason.contains("etcd-0.etcd") && v.reason.contains("peer port"), "{}", v.reason);
}

#[test]
fn data_of_another_cluster_is_refused_by_a_never_served_static_bootstrap_too() {
    let data = DataDirState::Member(WalMeta { member_id: 0xc602, cluster_id: OTHER });
    let v = run_heard(data, no_answer(), lists(vec![list(0, CLUSTER, three_static())]));
    assert_eq!(v.decision, Decision::Refuse, "{}", v.reason);
}

#[test]
fn mixed_answers_go_on_with_mine_and_name_the_others() {
    // My cluster without quorum on the client port, a foreign peer on the peer port.
    let heard = lists(vec![list(2, OTHER, vec![member(0x99, "etcd-2", &peer(2))])]);
    let v = run_heard(has_data(ME_ID), answer(three_started(), false), heard);
    assert_eq!(v.decision, Decision::Existing { update_peer_urls: None }, "{}", v.reason);
    assert!(v.reason.contains("dead") && v.reason.contains("etcd-2.etcd"), "{}", v.reason);
}

#[test]
fn a_foreign_client_answer_with_quorum_does_not_outweigh_my_cluster_on_the_peer_port() {
    let foreign = ClusterView::Answer {
        endpoint: "etcd-2.etcd.default.svc.cluster.local".into(),
        cluster_id: OTHER,
        members: vec![member(0x99, "etcd-2", &peer(2))],
        quorum: true,
    };
    let heard = lists(vec![list(0, CLUSTER, three_started())]);
    let v = run_heard(has_data(ME_ID), foreign, heard);
    assert_eq!(v.decision, Decision::Existing { update_peer_urls: None }, "{}", v.reason);
    assert!(v.reason.contains("ignored"), "{}", v.reason);
}

#[test]
fn another_client_answer_naming_my_cluster_keeps_the_volume_mine() {
    let foreign = ClusterView::Answer {
        endpoint: "etcd-2.etcd.default.svc.cluster.local".into(),
        cluster_id: OTHER,
        members: vec![member(0x99, "etcd-2", &peer(2))],
        quorum: false,
    };
    let heard = Heard {
        clients: vec![crate::observed::ClientAnswer {
            host: host(0),
            cluster_id: CLUSTER,
            quorum: false,
            members: three_started(),
        }],
        ..Heard::default()
    };
    let v = run_heard(has_data(ME_ID), foreign, heard);
    assert_eq!(v.decision, Decision::Existing { update_peer_urls: None }, "{}", v.reason);
}

// Row: has data | no quorum, same cluster ID | my member ID is listed | EXISTING, from the peer
// port alone. A static bootstrap's member has the static ID.
#[test]
fn data_with_only_my_cluster_on_the_peer_port_is_existing() {
    for (members, mine) in [(three_started(), ME_ID), (three_static(), static_id(MY_URL))] {
        let v = run_heard(has_data(mine), no_answer(), lists(vec![list(0, CLUSTER, members)]));
        assert_eq!(v.decision, Decision::Existing { update_peer_urls: None }, "{}", v.reason);
        // A peer port cannot tell quorum: the reason must not say the cluster has none (a member
        // restarted beside two serving ones logged "the cluster has no quorum").
        assert!(!v.reason.contains("no quorum"), "{}", v.reason);
        assert!(v.reason.contains("(peer port) names"), "{}", v.reason);
    }
    // A client port that answered without quorum does say so.
    let v = run_heard(has_data(ME_ID), answer(three_started(), false), lists(vec![]));
    assert_eq!(v.decision, Decision::Existing { update_peer_urls: None }, "{}", v.reason);
    assert!(v.reason.contains("the cluster has no quorum"), "{}", v.reason);
}

// Row: empty | started members, no quorum | WAIT: a formed cluster whose client ports are blocked
// but whose peer ports answer. The empty initial pod must not start NEW under its static ID.
#[test]
fn empty_initial_pod_waits_when_the_peer_port_says_my_static_member_has_served() {
    let mut members = three_static();
    for m in &mut members {
        m.client_urls = vec![m.peer_urls[0].replace(":2380", ":2379")];
    }
    let v = run_heard(DataDirState::Empty, no_answer(), lists(vec![list(0, CLUSTER, members)]));
    assert_eq!(v.decision, Decision::Wait, "{}", v.reason);
    assert!(v.reason.contains("quorum"), "{}", v.reason);
}

#[test]
fn a_lagging_never_served_peer_list_does_not_hide_a_formed_cluster() {
    let heard = lists(vec![list(2, CLUSTER, three_static()), list(0, CLUSTER, three_started())]);
    let v = run_heard(DataDirState::Empty, no_answer(), heard);
    assert_eq!(v.decision, Decision::Wait, "{}", v.reason);
}

#[test]
fn a_served_peer_list_outweighs_a_never_served_client_answer() {
    let heard = lists(vec![list(0, CLUSTER, three_started())]);
    let v = run_heard(DataDirState::Empty, answer(three_static(), false), heard);
    assert_eq!(v.decision, Decision::Wait, "{}", v.reason);
}

// Row: empty | answers but never started | NEW: "never started" from the peer port's lists.
#[test]
fn empty_initial_pod_starts_new_on_never_served_peer_lists() {
    let heard = lists(vec![list(0, CLUSTER, three_static()), list(2, CLUSTER, three_static())]);
    let v = run_heard(DataDirState::Empty, no_answer(), heard);
    assert_eq!(v.decision, Decision::New, "{}", v.reason);
}

#[test]
fn late_initial_member_starts_new_on_served_peer_lists_with_my_entry_never_served() {
    let mut members = three_started();
    members[1] = static_entry("etcd-1", MY_URL);
    let heard = lists(vec![list(0, CLUSTER, members.clone()), list(2, CLUSTER, members)]);
    let v = run_heard(DataDirState::Empty, no_answer(), heard);
    assert_eq!(v.decision, Decision::New, "{}", v.reason);
}

#[test]
fn my_added_entry_on_the_peer_port_is_reused_without_quorum() {
    let members = vec![member(0x10, "etcd-0", &peer(0)), member(0x77, "", MY_URL)];
    let v = run_heard(DataDirState::Empty, no_answer(), lists(vec![list(0, CLUSTER, members)]));
    assert_eq!(v.decision, Decision::Join { reuse: Some(0x77), as_learner: false }, "{}", v.reason);
}

#[test]
fn a_client_answer_with_quorum_is_the_view_whatever_the_peer_ports_say() {
    let mut members = three_started();
    members.remove(1);
    let stale = lists(vec![list(0, CLUSTER, three_static())]);
    let v = run_heard(DataDirState::Empty, answer(members, true), stale);
    assert_eq!(v.decision, Decision::Join { reuse: None, as_learner: false }, "{}", v.reason);
}

// When the observation may stop waiting for a peer's client port, given its peer port's list.
#[test]
fn client_answer_is_needed_only_where_it_can_change_the_decision() {
    use answers::client_answer_needed;
    let me = me();
    let never = list(0, CLUSTER, three_static());
    let formed = list(0, CLUSTER, three_started());
    let mut moved = three_started();
    moved[1].peer_urls = vec!["http://10.0.0.9:2380".into()];
    let moved = list(0, CLUSTER, moved);
    let mut without_me = three_started();
    without_me.remove(1);
    let without_me = list(0, CLUSTER, without_me);
    let foreign = list(0, OTHER, three_started());
    let cases: [(&str, DataDirState, &PeerList, bool); 8] = [
        ("empty, never served: NEW or WAIT either way", DataDirState::Empty, &never, false),
        ("empty, formed: quorum decides JOIN/REPLACE", DataDirState::Empty, &formed, true),
        ("data, never served: EXISTING", has_data(ME_ID), &never, false),
        ("data, listed with my URL: EXISTING", has_data(ME_ID), &formed, false),
        ("data, listed with another URL: update", has_data(ME_ID), &moved, true),
        ("data, not listed: STALE needs quorum", has_data(ME_ID), &without_me, true),
        ("data, another cluster: same answer", has_data(ME_ID), &foreign, false),
        ("unknown data: REFUSE", DataDirState::Unknown { entries: vec!["x".into()] }, &formed, false),
    ];
    for (what, data, list, want) in cases {
        assert_eq!(client_answer_needed(&data, &me, list), want, "{what}");
    }
}

// `--join-as` takes exactly the names its help lists, and prints them back the same way.
#[test]
fn join_as_reads_and_prints_the_names_the_help_lists() {
    for name in ["voter", "learner"] {
        let parsed: JoinAs = name.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed.to_string(), name);
    }
    assert_eq!("learner".parse::<JoinAs>(), Ok(JoinAs::Learner));
    let wrong = "observer".parse::<JoinAs>().unwrap_err();
    assert!(wrong.contains("\"observer\"") && wrong.contains("voter or learner"), "{wrong}");
}

// The README's decision table and these tests stay in step: every row of the table has a test
// module introduced by `/// Row: ` and the row's first three cells and decision, named with the
// row's words and holding at least one test; and every such module names a row that exists.
#[test]
fn every_row_of_the_readme_table_has_a_test_module_named_with_its_words() {
    let rows = readme_rows(include_str!("../../README.md"));
    assert!(rows.len() >= 14, "the README's decision table has {} rows", rows.len());
    let sources = [("tests.rs", include_str!("tests.rs")), ("restore.rs", include_str!("restore.rs"))];
    let modules: Vec<(String, String, bool)> =
        sources.iter().flat_map(|(_, text)| row_modules(text)).collect();
    for (doc, words) in &rows {
        let Some((_, name, has_test)) = modules.iter().find(|(d, _, _)| d == doc) else {
            panic!("no test module for the README row `{doc}`: add `/// Row: {doc}` and its module");
        };
        let foreign: Vec<&str> = name.split('_').filter(|w| !words.iter().any(|r| r == w)).collect();
        assert!(foreign.is_empty(), "module {name} is not named with the words of `{doc}`: {foreign:?}");
        assert!(has_test, "module {name} holds no test");
    }
    for (doc, name, _) in &modules {
        assert!(
            rows.iter().any(|(d, _)| d == doc),
            "module {name} names a row the README does not have: {doc}"
        );
    }
}

/// The README's decision table: per row, `cell | cell | cell | DECISION` and the words of the
/// whole row.
fn readme_rows(readme: &str) -> Vec<(String, Vec<String>)> {
    let header = "| data dir | what the cluster says | about this pod | decision |";
    let lines = readme.lines().skip_while(|l| l.trim() != header).skip(2);
    lines
        .take_while(|l| l.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 4, "a README table row of {} cells, not 4: {line}", cells.len());
            let decision: String = cells[3].chars().take_while(char::is_ascii_uppercase).collect();
            let doc = format!("{} | {} | {} | {decision}", cells[0], cells[1], cells[2]);
            let words = line
                .to_lowercase()
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect();
            (doc, words)
        })
        .collect()
}

/// Every `/// Row: ...` module of a source file: its row, its name, whether it holds a test.
fn row_modules(source: &str) -> Vec<(String, String, bool)> {
    let lines: Vec<&str> = source.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(doc) = line.trim().strip_prefix("/// Row: ") else { continue };
        let Some(name) = lines.get(i + 1).and_then(|l| l.trim().strip_prefix("mod ")) else { continue };
        let name = name.trim_end_matches('{').trim().to_string();
        let body: Vec<&&str> =
            lines[i + 2..].iter().take_while(|l| !l.starts_with('}') && **l != "    }").collect();
        found.push((doc.to_string(), name, body.iter().any(|l| l.trim() == "#[test]")));
    }
    found
}
