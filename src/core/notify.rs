//! What a `notify` URL is sent when a deploy ends: stagehand's own JSON summary, or a
//! message shaped for a Slack or Discord incoming webhook. Pure: `report.rs` posts it.
//!
//! Every format links the dashboard's deploy page (`<public_url>/deploys/<id>`), which
//! a person can open after logging in, not the token-protected API log.

use serde::Deserialize;
use serde_json::{Value, json};

use super::deploy::Deploy;

/// How a notify URL wants its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyFormat {
    /// stagehand's summary with the whole deploy object.
    #[default]
    Json,
    /// `{"text": …}` with Slack's `<url|label>` links.
    Slack,
    /// `{"content": …}` with Markdown links.
    Discord,
}

/// The dashboard page of `deploy` under `public_url` (relative without one).
pub fn deploy_page(public_url: Option<&str>, deploy: &Deploy) -> String {
    format!(
        "{}/deploys/{}",
        public_url.unwrap_or_default().trim_end_matches('/'),
        deploy.id
    )
}

/// One line for people: `shop/staging: deploy #7 succeeded — 3f2a1c9 Add cart (Ada)`.
fn headline(deploy: &Deploy) -> String {
    let mut line = format!(
        "{}/{}: deploy #{} {}",
        deploy.app, deploy.environment, deploy.id, deploy.status
    );
    if let Some(commit) = &deploy.commit {
        line.push_str(&format!(" — {}", &commit[..7.min(commit.len())]));
        if let Some(message) = &deploy.message {
            line.push_str(&format!(" {message}"));
        }
        if let Some(author) = &deploy.author {
            line.push_str(&format!(" ({author})"));
        }
    }
    if let Some(reason) = &deploy.reason {
        line.push_str(&format!(": {reason}"));
    }
    line
}

/// Slack's mrkdwn treats `&`, `<` and `>` as markup: escape them in our text.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Discord Markdown: keep payload text (branch names, messages) from becoming markup.
fn discord_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '~' | '`' | '|' | '[' | ']' | '(' | ')' | '<' | '>' | '@' | '#'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The body to POST for `deploy` in `format`; `page` is its dashboard URL and
/// `log_url` its API log.
pub fn payload(format: NotifyFormat, deploy: &Deploy, page: &str, log_url: &str) -> Value {
    match format {
        NotifyFormat::Json => json!({
            "event": "deploy_finished",
            "app": deploy.app,
            "environment": deploy.environment,
            "status": deploy.status,
            "reason": deploy.reason,
            "commit": deploy.commit,
            "message": deploy.message,
            "author": deploy.author,
            "release": deploy.release,
            "url": page,
            "log_url": log_url,
            "deploy": deploy,
        }),
        NotifyFormat::Slack => json!({
            "text": format!("{} <{page}|details>", slack_escape(&headline(deploy))),
        }),
        NotifyFormat::Discord => json!({
            "content": format!("{} [details]({page})", discord_escape(&headline(deploy))),
            "allowed_mentions": { "parse": [] },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::deploy::{DeployStatus, Trigger};
    use crate::core::ids::{AppName, DeployId, EnvironmentName};
    use crate::core::time::UnixMillis;

    fn deploy() -> Deploy {
        Deploy {
            id: DeployId(7),
            app: AppName::parse("shop").unwrap(),
            environment: EnvironmentName::parse("staging").unwrap(),
            base_environment: EnvironmentName::parse("staging").unwrap(),
            git_ref: "refs/heads/develop".into(),
            commit: Some("3f2a1c9d".repeat(5)),
            trigger: Trigger::Push,
            status: DeployStatus::Succeeded,
            reason: None,
            reason_code: None,
            release: Some("20261201T100000Z-3f2a1c9".into()),
            forced: false,
            message: Some("Add <cart> & *totals*".into()),
            author: Some("Ada".into()),
            from_environment: None,
            created_at: UnixMillis(0),
            started_at: None,
            finished_at: None,
            stages: Vec::new(),
        }
    }

    #[test]
    fn each_format_links_the_dashboard_page() {
        let d = deploy();
        let page = deploy_page(Some("https://deploy.example.com/"), &d);
        assert_eq!(page, "https://deploy.example.com/deploys/7");
        assert_eq!(deploy_page(None, &d), "/deploys/7");
        let log = "https://deploy.example.com/api/deploys/7/log";

        let plain = payload(NotifyFormat::Json, &d, &page, log);
        assert_eq!(plain["url"], page);
        assert_eq!(plain["log_url"], log);
        assert_eq!(plain["message"], "Add <cart> & *totals*");
        assert_eq!(plain["deploy"]["id"], "7");

        let slack = payload(NotifyFormat::Slack, &d, &page, log);
        assert_eq!(
            slack["text"],
            "shop/staging: deploy #7 succeeded — 3f2a1c9 Add &lt;cart&gt; &amp; *totals* (Ada) \
             <https://deploy.example.com/deploys/7|details>"
        );
        let discord = payload(NotifyFormat::Discord, &d, &page, log);
        assert_eq!(
            discord["content"],
            "shop/staging: deploy \\#7 succeeded — 3f2a1c9 Add \\<cart\\> & \\*totals\\* \\(Ada\\) \
             [details](https://deploy.example.com/deploys/7)"
        );
        assert_eq!(discord["allowed_mentions"]["parse"], json!([]));
    }
}
