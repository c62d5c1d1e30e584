//! The JSON the API answers with, as types: the server serializes them and the CLI
//! client reads them, so the two cannot drift apart. Field names and which fields are
//! present are the contract (README: HTTP API); `GET /api/apps`'s shape is tested here.

use serde::Serialize;

use crate::core::deploy::Deploy;
use crate::core::ids::{AppName, DeployId, EnvironmentName};

/// One app as `/api/apps` and the dashboard show it.
#[derive(Debug, Serialize)]
pub struct AppOverview {
    pub name: AppName,
    pub github: String,
    pub environments: Vec<EnvironmentOverview>,
}

/// One environment (a configured one, or a live temporary one) and what is live there.
#[derive(Debug, Serialize)]
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
    pub live_deploy: Option<Deploy>,
    pub last_deploy: Option<Deploy>,
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
#[derive(Debug, Serialize)]
pub struct PendingPush {
    pub commit: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub deploy: DeployId,
}

/// `process` in `/api/apps`: the environment's live app process.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessView {
    pub state: String,
    pub pid: Option<i32>,
    pub port: u16,
    pub release: String,
    pub started_at: Option<String>,
    pub restarts: u32,
}

/// One release on disk (`GET …/releases`), newest first.
#[derive(Debug, Serialize)]
pub struct ReleaseView {
    pub release: String,
    /// Its `REVISION` file, if readable.
    pub commit: Option<String>,
    pub live: bool,
    /// The default rollback target.
    pub previous: bool,
    /// The deploy that built it, if the store knows.
    pub deploy: Option<DeployId>,
    pub status: Option<crate::core::deploy::DeployStatus>,
    /// Its own deploy failed after the switch or was rolled back.
    pub failed: bool,
    pub message: Option<String>,
    pub author: Option<String>,
}
