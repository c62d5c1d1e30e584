//! Which temporary environments expire: `expire_after` on a branch-pattern environment
//! tears down a preview with no deploy for that long, unless it is pinned or already
//! on its way out. Pure: the caller passes the time and what the store knows.

use std::time::Duration;

use super::ids::EnvironmentName;
use super::time::UnixMillis;

/// A temporary environment as the expiry sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub name: EnvironmentName,
    /// Its newest deploy's creation (or its own creation, when it has none).
    pub last_activity: UnixMillis,
    pub pinned: bool,
    /// A deploy of it is queued or running (a teardown among them, perhaps).
    pub busy: bool,
}

/// When a preview last active at `last_activity` expires.
pub fn expires_at(last_activity: UnixMillis, expire_after: Duration) -> UnixMillis {
    let ms = i64::try_from(expire_after.as_millis()).unwrap_or(i64::MAX);
    UnixMillis(last_activity.0.saturating_add(ms))
}

/// The previews to tear down now, oldest activity first.
pub fn to_expire(
    previews: &[Preview],
    now: UnixMillis,
    expire_after: Duration,
) -> Vec<EnvironmentName> {
    let mut due: Vec<&Preview> = previews
        .iter()
        .filter(|p| !p.pinned && !p.busy && now >= expires_at(p.last_activity, expire_after))
        .collect();
    due.sort_by_key(|p| p.last_activity);
    due.into_iter().map(|p| p.name.clone()).collect()
}

/// Whether a new preview would pass `max_environments`. A push over the limit is
/// ignored rather than expiring the oldest preview: a preview someone is reviewing
/// never disappears because someone else pushed a branch; `expire_after` and branch
/// deletion are what free places.
pub fn limit_reached(existing: usize, limit: usize) -> bool {
    existing >= limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_table() {
        let p = |name: &str, last: i64, pinned: bool, busy: bool| Preview {
            name: EnvironmentName::parse(name).unwrap(),
            last_activity: UnixMillis(last),
            pinned,
            busy,
        };
        fn check(previews: &[Preview], now: i64, after_ms: u64, expected: &[&str]) {
            let got = to_expire(previews, UnixMillis(now), Duration::from_millis(after_ms));
            let got: Vec<&str> = got.iter().map(|n| n.as_str()).collect();
            assert_eq!(got, expected, "now {now}");
        }
        let all = [
            p("preview-a", 1_000, false, false),
            p("preview-b", 5_000, false, false),
            p("preview-pinned", 0, true, false),
            p("preview-busy", 0, false, true),
        ];
        check(&all, 5_000, 10_000, &[]);
        check(&all, 11_000, 10_000, &["preview-a"]);
        check(&all, 15_000, 10_000, &["preview-a", "preview-b"]);
        check(&all, 1_000_000, 10_000, &["preview-a", "preview-b"]);
        check(&[], 1_000_000, 1, &[]);
    }

    #[test]
    fn limit_table() {
        for (existing, limit, reached) in [
            (0, 1, false),
            (1, 1, true),
            (9, 10, false),
            (10, 10, true),
            (11, 10, true),
        ] {
            assert_eq!(
                limit_reached(existing, limit),
                reached,
                "{existing}/{limit}"
            );
        }
    }
}
