//! Commit statuses on GitLab, Gitea, Forgejo and Bitbucket (`statuses = { token_env,
//! api_url }`): one per environment, set in progress when a deploy of a commit starts
//! and to its outcome when it ends. The request itself is built by
//! `core::forge::status`; this module only sends it, through `report`'s retrying POST,
//! so a forge being down costs a log line, never a deploy.

use crate::config::{AppConfig, Config};
use crate::core::deploy::Trigger;
use crate::core::forge::status::{self, Phase, StatusFacts};
use crate::report::{ReportEvent, log_url, post_with};

pub async fn report(client: &awc::Client, config: &Config, app: &AppConfig, event: &ReportEvent) {
    let Some(target) = &app.status_report else {
        return;
    };
    let (deploy, phase) = match event {
        ReportEvent::Started(d) => (d, Phase::Started),
        ReportEvent::Finished(d) => (d, Phase::Finished(d.status)),
    };
    // Only deploys of a commit that actually started have a status to set or close.
    let reports_commits = matches!(
        deploy.trigger,
        Trigger::Push | Trigger::Manual | Trigger::Promote | Trigger::Rollback
    );
    let (Some(commit), true, true) = (
        deploy.commit.as_deref(),
        reports_commits,
        deploy.started_at.is_some() || phase == Phase::Started,
    ) else {
        return;
    };
    let description = deploy
        .reason
        .clone()
        .unwrap_or_else(|| format!("stagehand deploy {}: {}", deploy.id, deploy.status));
    let target_url = log_url(config, deploy);
    let Some(request) = status::request(&StatusFacts {
        forge: app.forge,
        api_url: &target.api_url,
        token: &target.token,
        repository: &app.repository,
        commit,
        environment: deploy.environment.as_str(),
        phase,
        target_url: &target_url,
        description: &description,
    }) else {
        return;
    };
    let headers = [(request.auth_header, request.auth_value.expose().to_owned())];
    post_with(client, &request.url, &headers, &request.body).await;
}
