//! The routine defragmentation policy: which member to defragment this round, if any.
//!
//! A member is wanted when its database is larger than `--defrag-min-size` and more of it than
//! `--defrag-threshold` is free pages (`1 - dbSizeInUse / dbSize`); `--defrag-threshold 0` turns
//! this off. Among the wanted ones, [`super::db::choose`] applies the shared rules (one at a time,
//! every voter answering, quorum kept, followers first, the leader last).

use super::db::{choose, size, MemberDb, Skip, Target};

/// Defaults, as OpenShift's etcd operator chose them: a member more than 45% fragmented and
/// larger than 100 MB.
#[cfg(test)]
pub(crate) const DEFAULT_THRESHOLD: f64 = 0.45;
#[cfg(test)]
pub(crate) const DEFAULT_MIN_SIZE: u64 = 100_000_000;

/// `--defrag-threshold` and `--defrag-min-size`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DefragSettings {
    /// A fraction in [0, 1); 0 switches routine defragmentation off.
    pub threshold: f64,
    /// Bytes; only larger databases are defragmented.
    pub min_size: u64,
}

impl DefragSettings {
    pub(crate) fn enabled(&self) -> bool {
        self.threshold > 0.0
    }

    /// Why `member` needs defragmenting, or None.
    pub(crate) fn wants(&self, member: &MemberDb) -> Option<String> {
        let db = member.status?;
        let fragmentation = db.fragmentation();
        (self.enabled() && db.size > self.min_size && fragmentation > self.threshold).then(|| {
            format!(
                "{} of its {} database is free pages ({:.0}% > {:.0}%, and larger than {})",
                size(db.reclaimable()),
                size(db.size),
                fragmentation * 100.0,
                self.threshold * 100.0,
                size(self.min_size)
            )
        })
    }
}

/// The member to defragment this round, why none may be, or None when none needs it.
/// `snapshotting` is the member a snapshot is being read from.
pub(crate) fn pick(
    settings: &DefragSettings,
    members: &[MemberDb],
    leader: u64,
    awaiting: Option<u64>,
    snapshotting: Option<u64>,
) -> Option<Result<Target, Skip>> {
    if !settings.enabled() {
        return None;
    }
    choose(members, leader, awaiting, snapshotting, |m| settings.wants(m))
}

/// Check `--defrag-threshold`: a fraction from 0 (off) to below 1.
pub(crate) fn check_threshold(value: f64) -> Result<f64, String> {
    if value.is_finite() && (0.0..1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "--defrag-threshold {value}: give the share of free pages that triggers a defragmentation, from 0 (off) to below 1, such as 0.45"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::db::tests::member;
    use super::super::db::SkipReason;
    use super::*;

    const MB: u64 = 1_000_000;

    fn settings(threshold: f64, min_size: u64) -> DefragSettings {
        DefragSettings { threshold, min_size }
    }

    #[test]
    fn wants_table() {
        let default = settings(DEFAULT_THRESHOLD, DEFAULT_MIN_SIZE);
        // (settings, size, in use, wanted, why)
        let rows = [
            (default, 200 * MB, 100 * MB, true, "50% free and 200 MB: beyond both defaults"),
            (default, 200 * MB, 120 * MB, false, "40% free: below the 45% threshold"),
            (default, 90 * MB, 10 * MB, false, "89% free but smaller than 100 MB"),
            (default, DEFAULT_MIN_SIZE, 1, false, "exactly the minimum size is not larger than it"),
            (default, 200 * MB, 0, false, "in use unknown (etcd 3.3): never wanted"),
            (settings(0.0, 0), 200 * MB, MB, false, "threshold 0 switches it off"),
            (settings(0.2, MB), 20 * MB, 15 * MB, true, "small settings: 25% free of 20 MB"),
            (settings(0.2, MB), 20 * MB, 16 * MB, false, "exactly at the threshold is not beyond it"),
        ];
        for (s, size, in_use, wanted, why) in rows {
            let got = s.wants(&member(100, size, in_use));
            assert_eq!(got.is_some(), wanted, "{why}: {got:?}");
        }
        let mut silent = member(100, 200 * MB, MB);
        silent.status = None;
        assert_eq!(default.wants(&silent), None, "a member that does not answer is not wanted");
    }

    #[test]
    fn reason_reads_well() {
        let s = settings(DEFAULT_THRESHOLD, DEFAULT_MIN_SIZE);
        let why = s.wants(&member(100, 200 * MB, 50 * MB)).expect("wanted");
        assert_eq!(
            why,
            "150.0 MB of its 200.0 MB database is free pages (75% > 45%, and larger than 100.0 MB)"
        );
    }

    #[test]
    fn pick_goes_leader_last_one_at_a_time() {
        let s = settings(0.3, 10 * MB);
        let fragmented = || {
            vec![member(100, 50 * MB, 5 * MB), member(101, 50 * MB, 5 * MB), member(102, 50 * MB, 10 * MB)]
        };
        // (members, awaiting, expected, why)
        type Want = Option<Result<u64, SkipReason>>;
        let mut after_101 = fragmented();
        after_101[1] = member(101, 5 * MB, 5 * MB);
        let mut after_both = after_101.clone();
        after_both[2] = member(102, 10 * MB, 10 * MB);
        let mut silent_101 = fragmented();
        silent_101[1].status = None;
        let mut done = after_both.clone();
        done[0] = member(100, 5 * MB, 5 * MB);
        let rows: Vec<(Vec<MemberDb>, Option<u64>, Want, &str)> = vec![
            (fragmented(), None, Some(Ok(101)), "the follower with most to win first (45 MB vs 40 MB)"),
            (silent_101, Some(101), Some(Err(SkipReason::Waiting)), "101 is being defragmented: wait for it"),
            (after_101, Some(101), Some(Ok(102)), "101 answers again and is compact: the other follower"),
            (after_both, Some(102), Some(Ok(100)), "followers done: the leader"),
            (done, Some(100), None, "all compact: nothing wanted"),
        ];
        for (members, awaiting, expected, why) in rows {
            let got: Want =
                pick(&s, &members, 100, awaiting, None).map(|r| r.map(|t| t.id).map_err(|k| k.reason));
            assert_eq!(got, expected, "{why}");
        }
        assert_eq!(pick(&settings(0.0, 0), &fragmented(), 100, None, None), None, "off");
    }

    #[test]
    fn threshold_table() {
        // (value, accepted, why)
        let rows = [
            (0.45, true, "the default"),
            (0.0, true, "0 switches it off"),
            (0.99, true, "almost all free"),
            (1.0, false, "a database can never be 100% free pages: it would never trigger"),
            (-0.1, false, "negative"),
            (f64::NAN, false, "not a number"),
            (45.0, false, "a percentage instead of a fraction"),
        ];
        for (value, ok, why) in rows {
            assert_eq!(check_threshold(value).is_ok(), ok, "{why}");
        }
        let err = check_threshold(45.0).expect_err("percentage");
        assert!(err.starts_with("--defrag-threshold 45:") && err.contains("such as 0.45"), "{err}");
    }
}
