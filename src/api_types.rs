//! The JSON the API answers with, as types: the server serializes them and the CLI
//! client deserializes them, so the two cannot drift apart. Field names and which
//! fields are present are the contract (README: HTTP API). Plain data: no I/O, no
//! store or HTTP types, so the client side needs nothing of the server's.

use serde::{Deserialize, Serialize};

use crate::core::deploy::{Deploy, DeployStatus, ReasonCode, Trigger};
use crate::core::ids::{AppName, DeployId, EnvironmentName};
use crate::core::time::UnixMillis;

/// A deploy as the API shows it, wherever it does (the contract's deploy object):
/// exactly what [`Deploy`]'s own serialization writes, field for field (tested below).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployView {
    pub id: DeployId,
    pub app: AppName,
    pub environment: EnvironmentName,
    pub base_environment: EnvironmentName,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub commit: Option<String>,
    pub trigger: Trigger,
    pub status: DeployStatus,
    pub reason: Option<String>,
    pub reason_code: Option<ReasonCode>,
    pub message: Option<String>,
    pub author: Option<String>,
    pub release: Option<String>,
    pub forced: bool,
    /// For a promote or sync: the environment it came from.
    pub from: Option<EnvironmentName>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub stages: Vec<StageView>,
    pub log_url: String,
}

/// One stage of a deploy: its name, how it ended (or that it runs), how long it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageView {
    pub name: String,
    pub status: DeployStatus,
    pub duration_ms: Option<i64>,
}

impl From<&Deploy> for DeployView {
    fn from(d: &Deploy) -> DeployView {
        DeployView {
            id: d.id,
            app: d.app.clone(),
            environment: d.environment.clone(),
            base_environment: d.base_environment.clone(),
            git_ref: d.git_ref.clone(),
            commit: d.commit.as_ref().map(ToString::to_string),
            trigger: d.trigger,
            status: d.status,
            reason: d.reason.clone(),
            reason_code: d.reason_code,
            message: d.message.clone(),
            author: d.author.clone(),
            release: d.release.clone(),
            forced: d.forced,
            from: d.from_environment.clone(),
            created_at: d.created_at.rfc3339(),
            started_at: d.started_at.map(UnixMillis::rfc3339),
            finished_at: d.finished_at.map(UnixMillis::rfc3339),
            stages: d
                .stages
                .iter()
                .map(|s| StageView {
                    name: s.name.to_string(),
                    status: s.status,
                    duration_ms: s.duration_ms,
                })
                .collect(),
            log_url: d.log_url(),
        }
    }
}

impl From<Deploy> for DeployView {
    fn from(d: Deploy) -> DeployView {
        DeployView::from(&d)
    }
}

/// `GET /api/apps`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AppsAnswer {
    pub apps: Vec<AppOverview>,
}

/// `GET /api/deploys`: newest first.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeploysAnswer {
    pub deploys: Vec<DeployView>,
}

/// A deploy just asked for (`202`) or cancelled (`200`).
#[derive(Debug, Serialize, Deserialize)]
pub struct DeployAnswer {
    pub deploy: DeployView,
}

/// `GET …/releases`: newest first.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReleasesAnswer {
    pub releases: Vec<ReleaseView>,
}

/// `POST /api/reload`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReloadAnswer {
    pub reloaded: bool,
    pub changes: Vec<String>,
}

/// `POST …/stop`: whether a process was stopped, and the one live afterwards.
#[derive(Debug, Serialize, Deserialize)]
pub struct StopAnswer {
    pub stopped: bool,
    pub process: Option<ProcessView>,
}

/// `POST …/{pin,unpin}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PinAnswer {
    pub pinned: bool,
}

/// One app as `/api/apps` and the dashboard show it.
#[derive(Debug, Serialize, Deserialize)]
pub struct AppOverview {
    pub name: AppName,
    pub github: String,
    pub environments: Vec<EnvironmentOverview>,
}

/// One environment (a configured one, or a live temporary one) and what is live there.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnvironmentOverview {
    pub name: EnvironmentName,
    /// The branch or tag pattern after `fed_by`'s first word.
    pub branch: Option<String>,
    /// `branch develop`, `tag v*`, `branch feature/x`.
    pub fed_by: String,
    pub temporary: bool,
    /// The configured environment a temporary one was made from.
    pub base: Option<EnvironmentName>,
    pub protected: bool,
    pub auto_deploy: bool,
    /// Deploys take a tag: there is no branch head to deploy by default.
    pub follows_tags: bool,
    pub live_release: Option<String>,
    pub live_commit: Option<String>,
    /// The deploy that built the live release: what is running, apart from whatever
    /// was attempted last.
    pub live_deploy: Option<DeployView>,
    pub last_deploy: Option<DeployView>,
    /// The push a manual environment has not deployed yet.
    pub pending: Option<PendingPush>,
    /// The live app process of an environment that `run`s.
    pub process: Option<ProcessView>,
    /// Its address at the front door (or its `url`), for a link.
    pub address: Option<String>,
    /// A pinned preview never expires.
    pub pinned: bool,
    /// When an idle preview expires (`expire_after` after its last deploy), RFC 3339.
    pub expires_at: Option<String>,
}

/// A push recorded but not deployed, because its environment has `auto_deploy = false`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PendingPush {
    pub commit: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub deploy: DeployId,
}

/// `process` in `/api/apps`: the environment's live app process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessView {
    pub state: String,
    pub pid: Option<i32>,
    pub port: u16,
    pub release: String,
    pub started_at: Option<String>,
    pub restarts: u32,
}

/// One release on disk (`GET …/releases`), newest first.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReleaseView {
    pub release: String,
    /// Its `REVISION` file, if readable.
    pub commit: Option<String>,
    pub live: bool,
    /// The default rollback target.
    pub previous: bool,
    /// The deploy that built it, if the store knows.
    pub deploy: Option<DeployId>,
    pub status: Option<DeployStatus>,
    /// Its own deploy failed after the switch or was rolled back.
    pub failed: bool,
    pub message: Option<String>,
    pub author: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::deploy::Stage;

    fn deploy(finished: bool) -> Deploy {
        Deploy {
            id: DeployId(7),
            app: AppName::parse("shop").unwrap(),
            environment: EnvironmentName::parse("preview-x").unwrap(),
            base_environment: EnvironmentName::parse("preview").unwrap(),
            git_ref: "refs/heads/x".into(),
            commit: Some("a".repeat(40)),
            trigger: Trigger::Promote,
            status: if finished {
                DeployStatus::Skipped
            } else {
                DeployStatus::Running
            },
            reason: finished.then(|| "why".into()),
            reason_code: finished.then_some(ReasonCode::AutoDeployOff),
            release: Some("20261127T184312Z-3f2a1c9".into()),
            forced: finished,
            message: Some("Add \"cart\"".into()),
            author: None,
            from_environment: finished.then(|| EnvironmentName::parse("staging").unwrap()),
            created_at: UnixMillis(1_700_000_000_123),
            started_at: Some(UnixMillis(1_700_000_001_000)),
            finished_at: finished.then_some(UnixMillis(1_700_000_002_000)),
            stages: vec![Stage {
                name: crate::core::stage::StageName::Fetch,
                status: DeployStatus::Succeeded,
                duration_ms: Some(41),
            }],
        }
    }

    /// The view writes the same bytes as `Deploy` itself, and reads them back.
    #[test]
    fn the_deploy_view_is_the_deploy_json_byte_for_byte() {
        for finished in [false, true] {
            let deploy = deploy(finished);
            let direct = serde_json::to_string(&deploy).unwrap();
            let view = DeployView::from(&deploy);
            assert_eq!(serde_json::to_string(&view).unwrap(), direct);
            let back: DeployView = serde_json::from_str(&direct).unwrap();
            assert_eq!(back, view);
        }
    }

    #[test]
    fn names_and_codes_are_checked_when_read() {
        let good = serde_json::to_value(DeployView::from(&deploy(true))).unwrap();
        let cases = [
            ("app", serde_json::json!("../etc")),
            ("status", serde_json::json!("done")),
            ("id", serde_json::json!("0")),
            ("reason_code", serde_json::json!("nope")),
        ];
        for (field, value) in cases {
            let mut bad = good.clone();
            bad[field] = value;
            assert!(
                serde_json::from_value::<DeployView>(bad).is_err(),
                "{field} accepted"
            );
        }
    }
}
