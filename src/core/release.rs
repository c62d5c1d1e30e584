//! Release naming and the decisions about which releases to keep, which is the
//! previous one, and whether a pushed commit still needs deploying.

use super::ids::CommitSha;
use super::time::UnixMillis;

/// `20261127T184312Z-3f2a1c9`: UTC time + short sha, so names say what they hold and
/// sort in deploy order. Order is what rollback and cleanup go by, so it must hold
/// even for two deploys in one second (or a clock stepped back): then the new release
/// takes the second after the newest existing one. Equal names get `-2`, `-3`, …
pub fn new_release_id(now: UnixMillis, commit: &CommitSha, existing: &[String]) -> String {
    let newest = existing
        .iter()
        .filter_map(|name| UnixMillis::from_compact(name.get(..16)?))
        .max();
    let stamp = match newest {
        Some(newest) if newest.0.div_euclid(1000) >= now.0.div_euclid(1000) => {
            UnixMillis(newest.0 + 1000)
        }
        _ => now,
    };
    let base = format!("{}-{}", stamp.compact(), commit.short());
    if !existing.contains(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|candidate| !existing.contains(candidate))
        .unwrap_or(base)
}

/// Whether a directory name under `releases/` is one stagehand made (anything else
/// there is left alone).
pub fn is_release_id(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 24
        && bytes[..8].iter().all(u8::is_ascii_digit)
        && bytes[8] == b'T'
        && bytes[9..15].iter().all(u8::is_ascii_digit)
        && bytes[15] == b'Z'
        && bytes[16] == b'-'
        && name[17..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// The release before `live` (the rollback target): the newest one older than it.
pub fn previous_release<'a>(releases: &'a [String], live: &str) -> Option<&'a str> {
    let mut sorted: Vec<&String> = releases.iter().filter(|r| r.as_str() < live).collect();
    sorted.sort();
    sorted.last().map(|s| s.as_str())
}

/// Releases to delete: all but the newest `keep`, and never the live one or the one
/// before it (the instant-rollback target), whatever `keep` says.
pub fn releases_to_remove(releases: &[String], live: Option<&str>, keep: usize) -> Vec<String> {
    let mut sorted: Vec<&String> = releases.iter().collect();
    sorted.sort();
    sorted.dedup();
    let previous = live.and_then(|l| previous_release(releases, l));
    let cut = sorted.len().saturating_sub(keep);
    sorted[..cut]
        .iter()
        .filter(|r| Some(r.as_str()) != live && Some(r.as_str()) != previous)
        .map(|r| r.to_string())
        .collect()
}

/// What the runner knows when a push deploy starts, after fetching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkipFacts {
    pub is_live: bool,
    pub is_ancestor_of_live: bool,
    pub forced: bool,
    pub by_hand: bool,
}

/// Deliveries arrive out of order: a commit already live, or older than the live one,
/// is skipped, unless the push was forced or a person asked for it.
pub fn skip_reason(facts: SkipFacts) -> Option<&'static str> {
    if facts.by_hand || facts.forced {
        None
    } else if facts.is_live {
        Some("this commit is already live")
    } else if facts.is_ancestor_of_live {
        Some("this commit is older than the live one (an out-of-order delivery)")
    } else {
        None
    }
}

/// A push deploys its commit only while that commit is still the head of the pushed
/// ref after fetching (for a tag: the commit it peels to). The delivery id is not
/// signed, so a captured (forced) push sent again after the ref moved on would
/// otherwise roll the environment back; a deploy asked for by hand names what it
/// wants and is never held to this.
pub fn replay_reason(
    pushed: bool,
    head: Option<&str>,
    commit: &str,
    ref_name: &str,
) -> Option<String> {
    (pushed && head != Some(commit)).then(|| format!("no longer the head of `{ref_name}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_whose_commit_is_no_longer_the_head_is_a_replay() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let cases: &[(bool, Option<&str>, &str, Option<&str>)] = &[
            (true, Some(&a), &a, None),
            (true, Some(&b), &a, Some("no longer the head of `develop`")),
            (true, None, &a, Some("no longer the head of `develop`")),
            (false, Some(&b), &a, None),
            (false, None, &a, None),
        ];
        for (pushed, head, commit, expected) in cases {
            assert_eq!(
                replay_reason(*pushed, *head, commit, "develop").as_deref(),
                *expected,
                "{pushed} {head:?}"
            );
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn release_ids_are_sortable_and_unique() {
        let sha = CommitSha::parse("3f2a1c9aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").unwrap();
        let other = CommitSha::parse("0000001aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").unwrap();
        let now = UnixMillis(1_795_804_992_345);
        assert_eq!(new_release_id(now, &sha, &[]), "20261127T184312Z-3f2a1c9");
        // A second deploy in the same second sorts after the first, whatever its sha.
        let first = vec!["20261127T184312Z-3f2a1c9".to_string()];
        let second = new_release_id(now, &other, &first);
        assert_eq!(second, "20261127T184313Z-0000001");
        assert!(second > first[0]);
        // A clock stepped back still sorts after the newest.
        let later = vec!["20261127T190000Z-3f2a1c9".to_string()];
        assert_eq!(
            new_release_id(now, &other, &later),
            "20261127T190001Z-0000001"
        );
        // Older releases do not hold back the clock.
        let older = vec!["20261127T180000Z-3f2a1c9".to_string()];
        assert_eq!(
            new_release_id(now, &sha, &older),
            "20261127T184312Z-3f2a1c9"
        );
        for good in [
            "20261127T184312Z-3f2a1c9",
            "20261127T184312Z-3f2a1c9-2",
            second.as_str(),
        ] {
            assert!(is_release_id(good), "{good}");
        }
        for bad in [
            "current",
            "20261127T184312Z",
            "2026112xT184312Z-3f2a1c9",
            "../20261127T184312Z-3f2a1c9",
            ".tmp-x",
        ] {
            assert!(!is_release_id(bad), "{bad}");
        }
    }

    #[test]
    fn cleanup_keeps_newest_live_and_previous() {
        let all = names(&["r1", "r2", "r3", "r4", "r5", "r6"]);
        let cases: &[(Option<&str>, usize, &[&str])] = &[
            (Some("r6"), 3, &["r1", "r2", "r3"]),
            (Some("r6"), 10, &[]),
            // keep = 1 still keeps the rollback target.
            (Some("r6"), 1, &["r1", "r2", "r3", "r4"]),
            // Rolled back to r2: r2 and r1 survive however small `keep` is.
            (Some("r2"), 2, &["r3", "r4"]),
            (None, 2, &["r1", "r2", "r3", "r4"]),
        ];
        for (live, keep, expected) in cases {
            assert_eq!(
                releases_to_remove(&all, *live, *keep),
                names(expected),
                "live {live:?} keep {keep}"
            );
        }
        assert_eq!(previous_release(&all, "r4"), Some("r3"));
        assert_eq!(previous_release(&all, "r1"), None);
    }

    #[test]
    fn skipping_out_of_order_deliveries() {
        let facts = |is_live, is_ancestor_of_live, forced, by_hand| SkipFacts {
            is_live,
            is_ancestor_of_live,
            forced,
            by_hand,
        };
        assert_eq!(skip_reason(facts(false, false, false, false)), None);
        assert_eq!(
            skip_reason(facts(true, false, false, false)),
            Some("this commit is already live")
        );
        assert!(
            skip_reason(facts(false, true, false, false))
                .unwrap()
                .contains("out-of-order")
        );
        assert_eq!(skip_reason(facts(true, true, true, false)), None);
        assert_eq!(skip_reason(facts(true, true, false, true)), None);
    }
}
