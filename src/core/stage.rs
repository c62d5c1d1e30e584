//! The names of a deploy's stages, as the store, `/metrics`, the deploy log, the API
//! and the dashboard show them. One enum so a stage cannot be recorded under one
//! spelling and looked for under another; [`StageName::as_str`] is the stored text.

use serde::{Serialize, Serializer};

/// A stage of a deploy (see `pipeline::deploy` for the order each trigger takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StageName {
    /// Not a stage: the label of the log lines about the deploy as a whole (how it
    /// started, how it ended). Never recorded as a stage row.
    Deploy,
    Fetch,
    Checkout,
    /// A new temporary environment's first copy of its `seed_from` data.
    Seed,
    Link,
    Build,
    /// An environment that `run`s: the new release's process started.
    Start,
    Switch,
    AfterRelease,
    Health,
    /// An environment that `run`s: the old process stopped after the switch.
    Retire,
    Cleanup,
    Teardown,
    Sync,
}

impl StageName {
    pub const ALL: [StageName; 14] = [
        StageName::Deploy,
        StageName::Fetch,
        StageName::Checkout,
        StageName::Seed,
        StageName::Link,
        StageName::Build,
        StageName::Start,
        StageName::Switch,
        StageName::AfterRelease,
        StageName::Health,
        StageName::Retire,
        StageName::Cleanup,
        StageName::Teardown,
        StageName::Sync,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Deploy => "deploy",
            StageName::Fetch => "fetch",
            StageName::Checkout => "checkout",
            StageName::Seed => "seed",
            StageName::Link => "link",
            StageName::Build => "build",
            StageName::Start => "start",
            StageName::Switch => "switch",
            StageName::AfterRelease => "after_release",
            StageName::Health => "health",
            StageName::Retire => "retire",
            StageName::Cleanup => "cleanup",
            StageName::Teardown => "teardown",
            StageName::Sync => "sync",
        }
    }

    /// The stored text back; `None` for a name this version does not know.
    pub fn parse(text: &str) -> Option<StageName> {
        StageName::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Pads like a `str` (`{:<7}` in the deploy log's column).
impl std::fmt::Display for StageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for StageName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored and shown names: rows written by earlier versions must still read.
    #[test]
    fn names_are_today_s_strings_and_parse_back() {
        let expected = [
            "deploy",
            "fetch",
            "checkout",
            "seed",
            "link",
            "build",
            "start",
            "switch",
            "after_release",
            "health",
            "retire",
            "cleanup",
            "teardown",
            "sync",
        ];
        let names: Vec<&str> = StageName::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, expected);
        for stage in StageName::ALL {
            assert_eq!(StageName::parse(stage.as_str()), Some(stage));
            assert_eq!(
                serde_json::to_value(stage).unwrap(),
                serde_json::json!(stage.as_str())
            );
        }
        assert_eq!(StageName::parse("compile"), None);
        assert_eq!(format!("[{:<7}]", StageName::Link), "[link   ]");
    }
}
