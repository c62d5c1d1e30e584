//! Reporting deploys back: GitHub Deployments (a deployment per deploy of a commit, then
//! its statuses `in_progress` → `success` / `failure` / `error`), commit statuses on the
//! other forges (`status.rs`), a preview's one comment on its pull request
//! (`comment.rs`), and the `notify` webhooks (a JSON summary, or a Slack/Discord
//! message, POSTed when a deploy ends; `core::notify` shapes it).
//!
//! Reporting never fails or delays a deploy: the runner only drops an event into a
//! channel; one task sends them in order, each retried with backoff, and gives up
//! with a log line. GitHub being down costs a warning, not a deploy.

pub(crate) mod comment;
pub(crate) mod status;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::config::{AppConfig, Config};
use crate::core::deploy::{Deploy, DeployStatus, Trigger};
use crate::core::ids::{DeployId, EnvironmentName};
use crate::core::notify;
use crate::reload::LiveConfig;

#[derive(Debug, Clone)]
pub enum ReportEvent {
    /// The deploy started running (for commit deploys, its commit is known).
    Started(Deploy),
    Finished(Deploy),
}

/// The runner's handle: sending never blocks and never fails the caller.
#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::UnboundedSender<ReportEvent>,
}

impl Reporter {
    pub fn send(&self, event: ReportEvent) {
        let _ = self.tx.send(event);
    }
}

/// Attempts per request, and the first pause between them (doubling).
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Starts the reporting task (on the current actix runtime) and returns its handle.
pub fn start(config: LiveConfig) -> Reporter {
    let (tx, mut rx) = mpsc::unbounded_channel::<ReportEvent>();
    actix_web::rt::spawn(async move {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(15))
            .finish();
        let mut deployments: HashMap<DeployId, u64> = HashMap::new();
        while let Some(event) = rx.recv().await {
            handle(&client, &config.get(), &mut deployments, event).await;
        }
    });
    Reporter { tx }
}

pub(crate) fn log_url(config: &Config, deploy: &Deploy) -> String {
    format!(
        "{}{}",
        config.server.public_url.as_deref().unwrap_or_default(),
        deploy.log_url()
    )
}

/// GitHub's state for a finished deploy; `None`: nothing to report.
pub fn github_state(status: DeployStatus) -> Option<&'static str> {
    match status {
        DeployStatus::Succeeded => Some("success"),
        DeployStatus::Failed | DeployStatus::RolledBack => Some("failure"),
        DeployStatus::Cancelled | DeployStatus::Interrupted => Some("error"),
        // Skipped or superseded after starting: the live release did not change.
        DeployStatus::Skipped | DeployStatus::Superseded => Some("inactive"),
        DeployStatus::Queued | DeployStatus::Waiting | DeployStatus::Running => None,
    }
}

async fn handle(
    client: &awc::Client,
    config: &Config,
    deployments: &mut HashMap<DeployId, u64>,
    event: ReportEvent,
) {
    let deploy = match &event {
        ReportEvent::Started(d) | ReportEvent::Finished(d) => d,
    };
    let Some(app) = config.apps.get(&deploy.app) else {
        return;
    };
    if let Some(github) = &app.github_report {
        let reports_commits = matches!(
            deploy.trigger,
            Trigger::Push
                | Trigger::Manual
                | Trigger::Promote
                | Trigger::Rollback
                | Trigger::Reconcile
        );
        match (&event, deploy.commit.as_deref()) {
            (ReportEvent::Started(_), Some(commit)) if reports_commits => {
                let body = deployment_body(app, deploy, commit);
                let url = format!("{}/repos/{}/deployments", github.api_url, app.repository);
                if let Some(answer) = post(client, &url, Some(github.token.expose()), &body).await
                    && let Some(id) = answer["id"].as_u64()
                {
                    deployments.insert(deploy.id, id);
                    status(client, config, app, deploy, id, "in_progress").await;
                }
            }
            (ReportEvent::Finished(_), _) => {
                if let (Some(id), Some(state)) =
                    (deployments.remove(&deploy.id), github_state(deploy.status))
                {
                    status(client, config, app, deploy, id, state).await;
                }
            }
            _ => {}
        }
    }
    crate::report::status::report(client, config, app, &event).await;
    crate::report::comment::report(client, config, app, &event).await;
    if let ReportEvent::Finished(_) = event {
        let page = notify::deploy_page(config.server.public_url.as_deref(), deploy);
        let log = log_url(config, deploy);
        for target in &app.notify {
            let body = notify::payload(target.format, deploy, &page, &log);
            post(client, &target.url, None, &body).await;
        }
    }
}

/// The environment's `url` when set, else its address at the front door.
fn environment_url(
    config: &Config,
    app: &AppConfig,
    base: &EnvironmentName,
    environment: &EnvironmentName,
) -> Option<String> {
    let env = app.environments.get(base)?;
    env.url
        .as_ref()
        .map(|u| u.replace("{environment}", environment.as_str()))
        .or_else(|| {
            crate::front_door::address::environment_address(config, &app.name, base, environment)
        })
}

fn deployment_body(app: &AppConfig, deploy: &Deploy, commit: &str) -> Value {
    let env = app.environments.get(&deploy.base_environment);
    json!({
        "ref": commit,
        "environment": deploy.environment,
        "description": format!("stagehand deploy {} ({})", deploy.id, deploy.trigger),
        "auto_merge": false,
        "required_contexts": [],
        "transient_environment": deploy.environment != deploy.base_environment,
        "production_environment": env.is_some_and(|e| e.protected),
        "payload": { "stagehand_deploy": deploy.id },
    })
}

async fn status(
    client: &awc::Client,
    config: &Config,
    app: &AppConfig,
    deploy: &Deploy,
    id: u64,
    state: &str,
) {
    let Some(github) = &app.github_report else {
        return;
    };
    let mut body = json!({
        "state": state,
        "log_url": log_url(config, deploy),
        "description": deploy.reason.clone().unwrap_or_else(|| format!("{}", deploy.status)),
    });
    if let Some(url) = environment_url(config, app, &deploy.base_environment, &deploy.environment) {
        body["environment_url"] = Value::String(url);
    }
    let url = format!(
        "{}/repos/{}/deployments/{id}/statuses",
        github.api_url, app.repository
    );
    post(client, &url, Some(github.token.expose()), &body).await;
}

/// POSTs JSON with retries; `None` after the last failure (logged).
async fn post(client: &awc::Client, url: &str, token: Option<&str>, body: &Value) -> Option<Value> {
    let mut headers = vec![("Accept", "application/vnd.github+json".to_owned())];
    if let Some(token) = token {
        headers.push(("Authorization", format!("Bearer {token}")));
    }
    post_with(client, url, &headers, body).await
}

/// [`post`] with the caller's headers (each forge authenticates its own way).
pub(crate) async fn post_with(
    client: &awc::Client,
    url: &str,
    headers: &[(&str, String)],
    body: &Value,
) -> Option<Value> {
    request_with(client, awc::http::Method::POST, url, headers, Some(body)).await
}

/// Any method, with retries; `None` after the last failure (logged).
pub(crate) async fn request_with(
    client: &awc::Client,
    method: awc::http::Method,
    url: &str,
    headers: &[(&str, String)],
    body: Option<&Value>,
) -> Option<Value> {
    let mut pause = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let mut req = client
            .request(method.clone(), url)
            .insert_header(("User-Agent", "stagehand"));
        for (name, value) in headers {
            req = req.insert_header((*name, value.as_str()));
        }
        let sent = match body {
            Some(body) => req.send_json(body).await,
            None => req.send().await,
        };
        let problem = match sent {
            Ok(mut resp) if resp.status().is_success() => {
                let bytes = resp.body().await.unwrap_or_default();
                return Some(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
            }
            Ok(resp) => format!("HTTP {}", resp.status()),
            Err(e) => e.to_string(),
        };
        if attempt == ATTEMPTS {
            tracing::warn!(
                url,
                attempts = ATTEMPTS,
                problem,
                "reporting failed; giving up"
            );
        } else {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    #[test]
    fn environment_url_is_the_configured_url_else_the_front_door_address() {
        let toml = r#"
[server]
public_url = "https://deploy.test"
front_door = "127.0.0.1:8080"
[apps.shop]
repo = "/r"
github = "a/s"
secret_env = "S"
root = "/srv"
[apps.shop.environments.staging]
branch = "develop"
url = "https://staging.example.com"
hosts = ["staging.shop.test"]
[apps.shop.environments.preview]
branch = "feature/*"
hosts = ["{environment}.p.test"]
[apps.shop.environments.production]
branch = "main"
"#;
        let vars: HashMap<String, String> = [("S".to_owned(), "x".to_owned())].into();
        let config =
            Config::from_sources(Path::new("/s.toml"), toml, &vars, &|_| Ok(String::new()))
                .unwrap();
        let app = config.apps.values().next().unwrap();
        let name = |n: &str| EnvironmentName::parse(n).unwrap();
        let url = |base: &str, env: &str| environment_url(&config, app, &name(base), &name(env));
        assert_eq!(
            url("staging", "staging").as_deref(),
            Some("https://staging.example.com")
        );
        assert_eq!(
            url("preview", "preview-login").as_deref(),
            Some("https://preview-login.p.test/")
        );
        assert_eq!(url("production", "production"), None);
    }
}
