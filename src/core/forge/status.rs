//! Reporting a deploy back as a commit status on GitLab, Gitea, Forgejo or Bitbucket:
//! which URL, which authentication header and which JSON body each forge's API takes.
//! GitHub reports through its Deployments API instead (`report.rs`). Pure: the caller
//! sends the request.
//!
//! - GitLab: `POST {api}/projects/{url-encoded path}/statuses/{sha}`, `PRIVATE-TOKEN`,
//!   `{state: running|success|failed|canceled, name, target_url, description}`.
//! - Gitea / Forgejo: `POST {api}/repos/{owner}/{repo}/statuses/{sha}`,
//!   `Authorization: token …`, `{state: pending|success|failure|error|warning, context,
//!   target_url, description}` (`CreateStatusOption`).
//! - Bitbucket Cloud: `POST {api}/repositories/{workspace}/{slug}/commit/{sha}/statuses/build`,
//!   `Authorization: Bearer …`, `{key, state: INPROGRESS|SUCCESSFUL|FAILED|STOPPED, name,
//!   url, description}`; a status with the same `key` is overwritten.
//!
//! Each environment gets its own status (`stagehand/<environment>`), updated in place
//! from in progress to its end.

use serde_json::{Value, json};

use super::Forge;
use crate::core::deploy::DeployStatus;
use crate::core::secret::Secret;

/// Where a deploy stands, as far as a commit status can say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Started,
    Finished(DeployStatus),
}

/// One request to send. The token sits in a [`Secret`], so printing this never shows it.
#[derive(Debug)]
pub struct StatusRequest {
    pub url: String,
    pub auth_header: &'static str,
    pub auth_value: Secret,
    pub body: Value,
}

pub struct StatusFacts<'a> {
    pub forge: Forge,
    /// Without a trailing `/`.
    pub api_url: &'a str,
    pub token: &'a Secret,
    pub repository: &'a str,
    pub commit: &'a str,
    pub environment: &'a str,
    pub phase: Phase,
    pub target_url: &'a str,
    pub description: &'a str,
}

/// The API's default base URL for hosted forges; self-hosted Gitea and Forgejo have none.
pub fn default_api_url(forge: Forge) -> Option<&'static str> {
    match forge {
        Forge::Gitlab => Some("https://gitlab.com/api/v4"),
        Forge::Bitbucket => Some("https://api.bitbucket.org/2.0"),
        Forge::Github | Forge::Gitea | Forge::Forgejo => None,
    }
}

/// The header each forge's API takes the token in (also for comments).
pub fn auth(forge: Forge, token: &Secret) -> (&'static str, Secret) {
    let token = token.expose();
    match forge {
        Forge::Gitlab => ("PRIVATE-TOKEN", Secret::new(token)),
        Forge::Gitea | Forge::Forgejo => ("Authorization", Secret::new(format!("token {token}"))),
        Forge::Github | Forge::Bitbucket => {
            ("Authorization", Secret::new(format!("Bearer {token}")))
        }
    }
}

/// The request for `facts`, or `None` when there is nothing to report (GitHub, or a
/// deploy still queued or running).
pub fn request(facts: &StatusFacts<'_>) -> Option<StatusRequest> {
    let state = state(facts.forge, facts.phase)?;
    let context = format!("stagehand/{}", facts.environment);
    let api = facts.api_url;
    let sha = facts.commit;
    let token = facts.token.expose();
    let (url, auth_header, auth_value, body) = match facts.forge {
        Forge::Github => return None,
        Forge::Gitlab => (
            format!(
                "{api}/projects/{}/statuses/{sha}",
                percent_encode(facts.repository)
            ),
            "PRIVATE-TOKEN",
            token.to_owned(),
            json!({
                "state": state,
                "name": context,
                "target_url": facts.target_url,
                "description": facts.description,
            }),
        ),
        Forge::Gitea | Forge::Forgejo => (
            format!("{api}/repos/{}/statuses/{sha}", facts.repository),
            "Authorization",
            format!("token {token}"),
            json!({
                "state": state,
                "context": context,
                "target_url": facts.target_url,
                "description": facts.description,
            }),
        ),
        Forge::Bitbucket => (
            format!(
                "{api}/repositories/{}/commit/{sha}/statuses/build",
                facts.repository
            ),
            "Authorization",
            format!("Bearer {token}"),
            json!({
                "key": context,
                "state": state,
                "name": context,
                "url": facts.target_url,
                "description": facts.description,
            }),
        ),
    };
    Some(StatusRequest {
        url,
        auth_header,
        auth_value: Secret::new(auth_value),
        body,
    })
}

/// Each forge's word for the phase. A deploy that started and then did not change the
/// live release (skipped as already live, superseded) closes its status as cancelled.
fn state(forge: Forge, phase: Phase) -> Option<&'static str> {
    use DeployStatus as S;
    let done = match phase {
        Phase::Started => None,
        Phase::Finished(S::Queued | S::Waiting | S::Running) => return None,
        Phase::Finished(status) => Some(status),
    };
    Some(match (forge, done) {
        (Forge::Github, _) => return None,
        (Forge::Gitlab, None) => "running",
        (Forge::Gitlab, Some(S::Succeeded)) => "success",
        (Forge::Gitlab, Some(S::Failed | S::RolledBack)) => "failed",
        (Forge::Gitlab, Some(_)) => "canceled",
        (Forge::Gitea | Forge::Forgejo, None) => "pending",
        (Forge::Gitea | Forge::Forgejo, Some(S::Succeeded)) => "success",
        (Forge::Gitea | Forge::Forgejo, Some(S::Failed | S::RolledBack)) => "failure",
        (Forge::Gitea | Forge::Forgejo, Some(S::Cancelled | S::Interrupted)) => "error",
        (Forge::Gitea | Forge::Forgejo, Some(_)) => "warning",
        (Forge::Bitbucket, None) => "INPROGRESS",
        (Forge::Bitbucket, Some(S::Succeeded)) => "SUCCESSFUL",
        (Forge::Bitbucket, Some(S::Failed | S::RolledBack)) => "FAILED",
        (Forge::Bitbucket, Some(_)) => "STOPPED",
    })
}

/// GitLab takes a project's path as one URL-encoded segment (`group%2Fsub%2Fname`).
pub(crate) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(forge: Forge, phase: Phase) -> Option<StatusRequest> {
        let token = Secret::new("t0k");
        request(&StatusFacts {
            forge,
            api_url: "http://api",
            token: &token,
            repository: "acme/web/shop",
            commit: "abc",
            environment: "staging",
            phase,
            target_url: "https://deploy/api/deploys/1/log",
            description: "succeeded",
        })
    }

    #[test]
    fn urls_headers_and_states() {
        use DeployStatus as S;
        let cases = [
            (
                Forge::Gitlab,
                Phase::Started,
                "http://api/projects/acme%2Fweb%2Fshop/statuses/abc",
                ("PRIVATE-TOKEN", "t0k"),
                "running",
            ),
            (
                Forge::Gitlab,
                Phase::Finished(S::RolledBack),
                "http://api/projects/acme%2Fweb%2Fshop/statuses/abc",
                ("PRIVATE-TOKEN", "t0k"),
                "failed",
            ),
            (
                Forge::Gitea,
                Phase::Finished(S::Succeeded),
                "http://api/repos/acme/web/shop/statuses/abc",
                ("Authorization", "token t0k"),
                "success",
            ),
            (
                Forge::Forgejo,
                Phase::Finished(S::Skipped),
                "http://api/repos/acme/web/shop/statuses/abc",
                ("Authorization", "token t0k"),
                "warning",
            ),
            (
                Forge::Bitbucket,
                Phase::Finished(S::Interrupted),
                "http://api/repositories/acme/web/shop/commit/abc/statuses/build",
                ("Authorization", "Bearer t0k"),
                "STOPPED",
            ),
        ];
        for (forge, phase, url, (header, value), state) in cases {
            let r = facts(forge, phase).unwrap();
            assert_eq!(r.url, url, "{forge}");
            assert_eq!((r.auth_header, r.auth_value.expose()), (header, value));
            assert_eq!(r.body["state"], state, "{forge} {phase:?}");
            assert!(!format!("{r:?}").contains("t0k"), "the token never prints");
        }
        assert!(facts(Forge::Github, Phase::Started).is_none());
        assert!(facts(Forge::Gitlab, Phase::Finished(S::Running)).is_none());
        let bitbucket = facts(Forge::Bitbucket, Phase::Started).unwrap();
        assert_eq!(bitbucket.body["key"], "stagehand/staging");
        assert_eq!(bitbucket.body["url"], "https://deploy/api/deploys/1/log");
    }
}
