//! The one comment a pull/merge-request preview keeps on its request (GitLab merge
//! request notes, GitHub/Gitea/Forgejo issue comments, Bitbucket pull request comments):
//! environment, address, status, commit and log link, created on the first deploy and
//! edited in place afterwards, found again by its marker (`core::forge::comment`). Uses
//! the app's `statuses` token and API (GitHub: `github = { token_env }`); like every
//! report it is retried and never fails a deploy. When the comments cannot be listed
//! nothing is posted: a second comment is worse than a stale one.

use awc::http::Method as HttpMethod;

use crate::config::{AppConfig, Config};
use crate::core::deploy::{Deploy, DeployStatus, Trigger};
use crate::core::forge::comment::{self, Method, Thread};
use crate::core::forge::status;
use crate::core::routing::RefSource;
use crate::report::{ReportEvent, log_url, request_with};

/// Pages of comments read looking for stagehand's (Bitbucket lists 10 a page by
/// default): should its comment lie past them, the request gets a second one.
const MAX_PAGES: usize = 30;

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
    let follows_requests = app
        .environments
        .get(&deploy.base_environment)
        .is_some_and(|env| matches!(env.source, RefSource::PullRequests(_)));
    let Some(number) = comment::request_number(
        &deploy.git_ref,
        deploy.base_environment.as_str(),
        deploy.environment.as_str(),
        follows_requests,
    ) else {
        return;
    };
    let thread = Thread {
        forge: app.forge,
        api_url,
        repository: &app.repository,
        number,
    };
    let (auth_header, auth_value) = status::auth(app.forge, token);
    let headers = [(auth_header, auth_value.expose().to_owned())];
    let text = comment::body(
        app.forge,
        deploy.environment.as_str(),
        status_text(deploy, started),
        address(app, deploy).as_deref(),
        deploy.commit.as_deref(),
        &log_url(config, deploy),
    );
    let environment = deploy.environment.as_str();
    let mut page_url = thread.comments_url();
    let mut existing = None;
    for _ in 0..MAX_PAGES {
        let Some(listed) = request_with(client, HttpMethod::GET, &page_url, &headers, None).await
        else {
            tracing::warn!(
                environment,
                number,
                "could not list the request's comments; its preview comment is not updated"
            );
            return;
        };
        existing = thread.find(&listed, environment);
        match (existing, thread.next_page(&listed)) {
            (None, Some(next)) => page_url = next,
            _ => break,
        }
    }
    let (method, url) = match existing {
        Some(id) => thread.update(id),
        None => thread.create(),
    };
    let method = match method {
        Method::Post => HttpMethod::POST,
        Method::Put => HttpMethod::PUT,
        Method::Patch => HttpMethod::PATCH,
    };
    request_with(client, method, &url, &headers, Some(&thread.payload(&text))).await;
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
