//! The one comment a pull/merge-request preview keeps on its request (GitLab merge
//! request notes, GitHub/Gitea/Forgejo issue comments): environment, address, status, commit
//! and log link, created on the first deploy and edited in place afterwards, found
//! again by its marker (`core::forge::comment`). Uses the app's `statuses` token and
//! API (GitHub: `github = { token_env }`); like every report it is retried and never
//! fails a deploy.

use awc::http::Method as HttpMethod;

use crate::config::{AppConfig, Config};
use crate::core::deploy::{Deploy, DeployStatus, Trigger};
use crate::core::forge::comment::{self, Method, Thread};
use crate::core::forge::status;
use crate::report::{ReportEvent, log_url, request_with};

pub async fn report(client: &awc::Client, config: &Config, app: &AppConfig, event: &ReportEvent) {
    // GitHub's token and API come with its Deployments reporting; the other forges'
    // with their commit statuses.
    let (api_url, token) = match (&app.github_report, &app.status_report) {
        (Some(github), _) => (&github.api_url, &github.token),
        (None, Some(other)) => (&other.api_url, &other.token),
        (None, None) => return,
    };
    let (deploy, started) = match event {
        ReportEvent::Started(d) => (d, true),
        ReportEvent::Finished(d) => (d, false),
    };
    let Some(number) = comment::pull_request_number(&deploy.git_ref) else {
        return;
    };
    let thread = Thread {
        forge: app.forge,
        api_url,
        repository: &app.repository,
        number,
    };
    let Some(list_url) = thread.comments_url() else {
        return;
    };
    let (auth_header, auth_value) = status::auth(app.forge, token);
    let headers = [(auth_header, auth_value.expose().to_owned())];
    let text = comment::body(
        deploy.environment.as_str(),
        status_text(deploy, started),
        address(app, deploy).as_deref(),
        deploy.commit.as_deref(),
        &log_url(config, deploy),
    );
    let listed = request_with(client, HttpMethod::GET, &list_url, &headers, None).await;
    let existing = listed.and_then(|l| comment::find(&l, deploy.environment.as_str()));
    let target = match existing {
        Some(id) => thread.update(id),
        None => thread.create(),
    };
    let Some((method, url)) = target else {
        return;
    };
    let method = match method {
        Method::Post => HttpMethod::POST,
        Method::Put => HttpMethod::PUT,
        Method::Patch => HttpMethod::PATCH,
    };
    let body = serde_json::json!({ "body": text });
    request_with(client, method, &url, &headers, Some(&body)).await;
}

fn status_text(deploy: &Deploy, started: bool) -> &'static str {
    match (deploy.trigger, started, deploy.status) {
        (Trigger::Teardown, true, _) => "tearing down",
        (Trigger::Teardown, false, DeployStatus::Succeeded) => "torn down",
        (_, true, _) => "deploying",
        (_, false, DeployStatus::Succeeded) => "deployed",
        (_, false, DeployStatus::Failed) => "failed",
        (_, false, DeployStatus::RolledBack) => "rolled back",
        (_, false, DeployStatus::Skipped | DeployStatus::Superseded) => "skipped",
        (_, false, _) => "stopped",
    }
}

fn address(app: &AppConfig, deploy: &Deploy) -> Option<String> {
    let env = app.environments.get(&deploy.base_environment)?;
    env.url
        .as_ref()
        .map(|u| u.replace("{environment}", deploy.environment.as_str()))
}
