//! A deploy as the API shows it, its statuses and triggers, and which status changes
//! are allowed. The store persists these; the runner drives them.

use serde::{Deserialize, Serialize};

use super::ids::{AppName, DeployId, EnvironmentName};
use super::stage::StageName;
use super::time::UnixMillis;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let text = String::deserialize(d)?;
                $name::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "{text:?} is not a {}",
                        stringify!($name)
                    ))
                })
            }
        }
    };
}

string_enum!(
    DeployStatus {
        Queued => "queued",
        Waiting => "waiting",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        RolledBack => "rolled_back",
        Superseded => "superseded",
        Skipped => "skipped",
        Cancelled => "cancelled",
        Interrupted => "interrupted",
    }
);

string_enum!(
    /// Why a deploy exists.
    Trigger {
        Push => "push",
        Manual => "manual",
        Rollback => "rollback",
        Promote => "promote",
        Teardown => "teardown",
        Sync => "sync",
        Reconcile => "reconcile",
        Expire => "expire",
        Restart => "restart",
    }
);

string_enum!(
    /// Why a deploy was recorded as skipped (or cancelled) without running, for code
    /// that acts on it (the reason text is for people and may change).
    ReasonCode {
        AutoDeployOff => "auto_deploy_off",
        SkipMarker => "skip_marker",
        // Ended by `POST /api/deploys/{id}/cancel` before it started.
        CancelledByRequest => "cancelled_by_request",
    }
);

impl Trigger {
    /// Deploys of a commit (as opposed to rollbacks, teardowns, syncs): only these
    /// coalesce, because only for these a newer one makes an older one pointless.
    pub fn deploys_a_commit(self) -> bool {
        matches!(
            self,
            Trigger::Push | Trigger::Manual | Trigger::Promote | Trigger::Reconcile
        )
    }

    /// Deploys that stand in for a push (a delivery, or one reconciliation found
    /// missing): the out-of-order skip rules apply to these, not to deploys people
    /// asked for.
    pub fn is_push_like(self) -> bool {
        matches!(self, Trigger::Push | Trigger::Reconcile)
    }
}

/// Which of an environment's queued deploys (oldest first) runs next, and which older
/// ones it supersedes: a run of commit deploys coalesces to its newest; anything else
/// runs in order.
pub fn next_to_run(queued: &[(DeployId, Trigger)]) -> Option<(DeployId, Vec<DeployId>)> {
    let (first, trigger) = *queued.first()?;
    if !trigger.deploys_a_commit() {
        return Some((first, Vec::new()));
    }
    let run: Vec<DeployId> = queued
        .iter()
        .take_while(|(_, t)| t.deploys_a_commit())
        .map(|(id, _)| *id)
        .collect();
    let (newest, older) = run.split_last()?;
    Some((*newest, older.to_vec()))
}

impl DeployStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            DeployStatus::Queued | DeployStatus::Waiting | DeployStatus::Running
        )
    }

    /// The allowed moves. Terminal statuses never change: a deploy's outcome is history.
    pub fn can_become(self, next: DeployStatus) -> bool {
        use DeployStatus::*;
        match self {
            Queued => matches!(next, Running | Waiting | Superseded | Skipped | Cancelled),
            // Waiting for the commit's checks (`require_checks`): back in the queue when
            // they pass, skipped when one fails or time runs out.
            Waiting => matches!(next, Queued | Superseded | Skipped | Cancelled),
            Running => matches!(
                next,
                Succeeded | Failed | RolledBack | Skipped | Cancelled | Interrupted
            ),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    pub name: StageName,
    pub status: DeployStatus,
    pub duration_ms: Option<i64>,
}

/// One deploy, shaped as the contract's JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deploy {
    pub id: DeployId,
    pub app: AppName,
    pub environment: EnvironmentName,
    /// The configured environment it belongs to (`preview` for `preview-feature-x`).
    pub base_environment: EnvironmentName,
    /// Full ref name (`refs/heads/develop`), or what a manual deploy asked for.
    pub git_ref: String,
    /// The pushed object (40 hex) as received; a manual deploy may not know it yet.
    pub commit: Option<String>,
    pub trigger: Trigger,
    pub status: DeployStatus,
    pub reason: Option<String>,
    /// The reason as a code, where something depends on it (a push waiting for a
    /// manual environment).
    pub reason_code: Option<ReasonCode>,
    pub release: Option<String>,
    pub forced: bool,
    /// The commit's message, first line: from the mirror once fetched, else from the
    /// delivery.
    pub message: Option<String>,
    /// The commit's author's name, as `message`.
    pub author: Option<String>,
    /// For a promote: the environment whose live commit this deploys.
    pub from_environment: Option<EnvironmentName>,
    pub created_at: UnixMillis,
    pub started_at: Option<UnixMillis>,
    pub finished_at: Option<UnixMillis>,
    pub stages: Vec<Stage>,
}

impl Deploy {
    pub fn log_url(&self) -> String {
        format!("/api/deploys/{}/log", self.id)
    }
}

impl Serialize for Deploy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = s.serialize_struct("Deploy", 20)?;
        out.serialize_field("id", &self.id)?;
        out.serialize_field("app", &self.app)?;
        out.serialize_field("environment", &self.environment)?;
        out.serialize_field("base_environment", &self.base_environment)?;
        out.serialize_field("ref", &self.git_ref)?;
        out.serialize_field("commit", &self.commit)?;
        out.serialize_field("trigger", &self.trigger)?;
        out.serialize_field("status", &self.status)?;
        out.serialize_field("reason", &self.reason)?;
        out.serialize_field("reason_code", &self.reason_code)?;
        out.serialize_field("message", &self.message)?;
        out.serialize_field("author", &self.author)?;
        out.serialize_field("release", &self.release)?;
        out.serialize_field("forced", &self.forced)?;
        out.serialize_field("from", &self.from_environment)?;
        out.serialize_field("created_at", &self.created_at.rfc3339())?;
        out.serialize_field("started_at", &self.started_at.map(UnixMillis::rfc3339))?;
        out.serialize_field("finished_at", &self.finished_at.map(UnixMillis::rfc3339))?;
        out.serialize_field("stages", &self.stages)?;
        out.serialize_field("log_url", &self.log_url())?;
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_terminal_ones_are_final() {
        for status in DeployStatus::ALL {
            assert_eq!(DeployStatus::parse(status.as_str()), Some(*status));
            if status.is_terminal() {
                for next in DeployStatus::ALL {
                    assert!(!status.can_become(*next), "{status} -> {next}");
                }
            }
        }
        assert!(DeployStatus::Queued.can_become(DeployStatus::Superseded));
        assert!(!DeployStatus::Running.can_become(DeployStatus::Superseded));
        assert!(DeployStatus::Running.can_become(DeployStatus::Interrupted));
        assert_eq!(DeployStatus::parse("done"), None);
        for trigger in Trigger::ALL {
            assert_eq!(Trigger::parse(trigger.as_str()), Some(*trigger));
        }
    }

    #[test]
    fn queued_commit_deploys_coalesce_to_the_newest() {
        use Trigger::*;
        let ids = |list: &[(i64, Trigger)]| {
            list.iter()
                .map(|(i, t)| (DeployId(*i), *t))
                .collect::<Vec<_>>()
        };
        type Case<'a> = (&'a [(i64, Trigger)], Option<(i64, &'a [i64])>);
        let cases: &[Case<'_>] = &[
            (&[], None),
            (&[(1, Push)], Some((1, &[]))),
            (&[(1, Push), (2, Push), (3, Manual)], Some((3, &[1, 2]))),
            (&[(1, Push), (2, Teardown), (3, Push)], Some((1, &[]))),
            (&[(1, Rollback), (2, Push)], Some((1, &[]))),
            (&[(1, Reconcile), (2, Push)], Some((2, &[1]))),
            (
                &[(1, Push), (2, Push), (3, Rollback), (4, Push)],
                Some((2, &[1])),
            ),
        ];
        for (queued, expected) in cases {
            let got = next_to_run(&ids(queued))
                .map(|(id, older)| (id.0, older.iter().map(|d| d.0).collect::<Vec<_>>()));
            let expected = expected.map(|(id, older)| (id, older.to_vec()));
            assert_eq!(got, expected, "{queued:?}");
        }
    }

    #[test]
    fn json_has_the_contract_shape() {
        let deploy = Deploy {
            id: DeployId(7),
            app: AppName::parse("shop").unwrap(),
            environment: EnvironmentName::parse("staging").unwrap(),
            base_environment: EnvironmentName::parse("staging").unwrap(),
            git_ref: "refs/heads/develop".into(),
            commit: Some("a".repeat(40)),
            trigger: Trigger::Push,
            status: DeployStatus::Queued,
            reason: None,
            reason_code: None,
            release: None,
            forced: false,
            message: Some("Add cart totals".into()),
            author: Some("Ada".into()),
            from_environment: None,
            created_at: UnixMillis(0),
            started_at: None,
            finished_at: None,
            stages: vec![Stage {
                name: StageName::Fetch,
                status: DeployStatus::Succeeded,
                duration_ms: Some(41),
            }],
        };
        let json = serde_json::to_value(&deploy).unwrap();
        assert_eq!(json["id"], "7");
        assert_eq!(json["ref"], "refs/heads/develop");
        assert_eq!(json["trigger"], "push");
        assert_eq!(json["status"], "queued");
        assert_eq!(json["created_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(json["started_at"], serde_json::Value::Null);
        assert_eq!(json["stages"][0]["duration_ms"], 41);
        assert_eq!(json["log_url"], "/api/deploys/7/log");
        assert_eq!(json["message"], "Add cart totals");
        assert_eq!(json["author"], "Ada");
        assert_eq!(json["reason_code"], serde_json::Value::Null);
        assert_eq!(
            serde_json::to_value(ReasonCode::AutoDeployOff).unwrap(),
            "auto_deploy_off"
        );
    }
}
