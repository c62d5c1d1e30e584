//! The client subcommands (`status`, `deploy`, `rollback`, `promote`, `sync`,
//! `releases`, `logs`): each is one or two `/api` calls and a rendering of the answer
//! read into [`crate::api_types`]. On a terminal the output has colour; piped, plain
//! lines; `--json` prints what the API returned, as it came.

use std::io::IsTerminal;
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::api_types::{
    AppsAnswer, DeployAnswer, DeployView, DeploysAnswer, ReleasesAnswer, ReloadAnswer,
};
use crate::client::{Client, ClientError, read};
use crate::core::deploy::DeployStatus;
use crate::core::log_text::strip_controls;
use crate::outln;

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub color: bool,
}

impl Output {
    pub fn new(json: bool) -> Output {
        Output {
            json,
            color: !json
                && std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// A log line, coloured by its source column (`info`, `out`, `err`).
    pub fn log_line(&self, line: &str) {
        outln!("{}", self.render_log_line(line));
    }

    /// The server strips control characters before it stores a line; stripping again
    /// here covers logs stored by an older server, so only our own colours reach the
    /// terminal.
    fn render_log_line(&self, line: &str) -> String {
        let line = strip_controls(line);
        match line.split_whitespace().nth(2) {
            Some("err") => self.paint("31", &line),
            Some("info") => self.paint("2", &line),
            _ => line.into_owned(),
        }
    }

    fn status(&self, status: DeployStatus) -> String {
        use DeployStatus::*;
        let code = match status {
            Succeeded => "32",
            Failed | RolledBack | Interrupted | Cancelled => "31",
            Running | Queued | Waiting => "33",
            Superseded | Skipped => "2",
        };
        self.paint(code, status.as_str())
    }

    /// A process state (`running`, `stopped`, …), coloured as the deploy statuses are.
    fn process_state(&self, state: &str) -> String {
        match DeployStatus::parse(state) {
            Some(status) => self.status(status),
            None => self.paint("2", state),
        }
    }
}

fn text(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

/// The length of `text` as shown, without colour codes.
fn visible_len(text: &str) -> usize {
    let mut len = 0;
    let mut in_escape = false;
    for c in text.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => len += 1,
        }
    }
    len
}

/// At most `max` characters of `text`, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

fn short(v: Option<&str>) -> String {
    v.map(|s| s.chars().take(7).collect())
        .unwrap_or_else(|| "-".into())
}

/// `message (author)`, the message cut to `max` characters.
fn message_by(message: Option<&str>, author: Option<&str>, max: usize) -> String {
    match (message, author) {
        (Some(m), Some(a)) => format!("{} ({a})", clip(m, max)),
        (Some(m), None) => clip(m, max),
        _ => "-".into(),
    }
}

pub async fn status(
    client: &Client,
    app: Option<&str>,
    out: Output,
) -> Result<ExitCode, ClientError> {
    let apps = client.get("/api/apps").await?;
    if out.json {
        outln!("{apps:#}");
        return Ok(ExitCode::SUCCESS);
    }
    let apps: AppsAnswer = read("/api/apps", &apps)?;
    for line in status_table(&apps, app, out) {
        outln!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The `status` table for `GET /api/apps`, optionally one app's rows only. Columns are
/// as wide as their longest cell (temporary environment names run to 63 characters);
/// the last column is free-form, so colour codes in it never shift the others.
pub fn status_table(apps: &AppsAnswer, only: Option<&str>, out: Output) -> Vec<String> {
    const HEADER: [&str; 6] = [
        "APP",
        "ENVIRONMENT",
        "FED BY",
        "LIVE RELEASE",
        "COMMIT",
        "MESSAGE",
    ];
    let mut rows: Vec<([String; 6], String)> = Vec::new();
    for a in &apps.apps {
        if only.is_some_and(|name| a.name.as_str() != name) {
            continue;
        }
        for env in &a.environments {
            let live = env.live_deploy.as_ref();
            // The last attempt is shown as such when it is not what is live: a failed
            // deploy leaves the live release as it was.
            let last_text = match &env.last_deploy {
                None => "-".to_owned(),
                Some(last) => {
                    let attempt = if live.is_none_or(|live| live.id == last.id) {
                        ""
                    } else {
                        " (live release unchanged)"
                    };
                    format!(
                        "#{} {} {}{attempt}",
                        last.id,
                        out.status(last.status),
                        last.created_at
                    )
                }
            };
            let message = message_by(
                live.and_then(|l| l.message.as_deref()),
                live.and_then(|l| l.author.as_deref()),
                40,
            );
            let mut name = env.name.to_string();
            if env.temporary {
                name.push_str(" (temp)");
            }
            rows.push((
                [
                    a.name.to_string(),
                    name,
                    text(env.branch.as_deref()).to_owned(),
                    text(env.live_release.as_deref()).to_owned(),
                    short(env.live_commit.as_deref()),
                    message,
                ],
                last_text,
            ));
            if let Some(pending) = &env.pending {
                rows.push((
                    Default::default(),
                    format!(
                        "pending: {} waits for deploy/promote",
                        short(pending.commit.as_deref())
                    ),
                ));
            }
            // Environments that `run`: where the live process listens, or why it does not.
            if let Some(process) = &env.process {
                let mut line = format!("process: {}", out.process_state(&process.state));
                if let Some(pid) = process.pid {
                    line.push_str(&format!(" pid {pid} on 127.0.0.1:{}", process.port));
                }
                if process.restarts > 0 {
                    line.push_str(&format!(", {} restarts", process.restarts));
                }
                rows.push((Default::default(), line));
            }
        }
    }
    let mut widths = HEADER.map(str::len);
    for (cells, _) in &rows {
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header = (HEADER.map(str::to_owned), "LAST DEPLOY".to_owned());
    std::iter::once(header)
        .chain(rows)
        .map(|(cells, last)| {
            let mut line = String::new();
            for (cell, width) in cells.iter().zip(widths) {
                line.push_str(&format!("{cell:<width$} "));
            }
            line.push_str(&last);
            line.trim_end().to_owned()
        })
        .collect()
}

/// Prints a just-created deploy, and with `follow` streams its log and exits with its outcome.
pub async fn created(
    client: &Client,
    answer: Value,
    follow: bool,
    out: Output,
) -> Result<ExitCode, ClientError> {
    let DeployAnswer { deploy } = read("the deploy answer", &answer)?;
    let id = deploy.id.to_string();
    if !follow {
        if out.json {
            outln!("{:#}", answer["deploy"]);
        } else {
            outln!(
                "deploy {id} {}: {}/{} ({}) — {}{}",
                out.status(deploy.status),
                deploy.app,
                deploy.environment,
                deploy.trigger,
                client.base,
                deploy.log_url
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    follow_to_end(client, &id, out).await
}

/// Streams the log of deploy `id` and exits non-zero unless it succeeded.
pub async fn follow_to_end(
    client: &Client,
    id: &str,
    out: Output,
) -> Result<ExitCode, ClientError> {
    if !out.json {
        client.follow_log(id, |line| out.log_line(line)).await?;
    } else {
        client.follow_log(id, |_| {}).await?;
    }
    let path = format!("/api/deploys/{id}");
    let answer = client.get(&path).await?;
    let deploy: DeployView = read(&path, &answer)?;
    if out.json {
        outln!("{answer:#}");
    } else {
        let reason = deploy
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        outln!("deploy {id} {}{reason}", out.status(deploy.status));
    }
    Ok(if deploy.status == DeployStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn deploy(
    client: &Client,
    app: &str,
    env: &str,
    git_ref: Option<&str>,
) -> Result<Value, ClientError> {
    let body = match git_ref {
        Some(r) => json!({ "ref": r }),
        None => json!({}),
    };
    client
        .post(&format!("/api/apps/{app}/environments/{env}/deploy"), &body)
        .await
}

pub async fn rollback(
    client: &Client,
    app: &str,
    env: &str,
    to: Option<&str>,
    force: bool,
) -> Result<Value, ClientError> {
    let body = match to {
        Some(r) => json!({ "release": r, "force": force }),
        None => json!({}),
    };
    client
        .post(
            &format!("/api/apps/{app}/environments/{env}/rollback"),
            &body,
        )
        .await
}

pub async fn promote(
    client: &Client,
    app: &str,
    from: &str,
    to: &str,
) -> Result<Value, ClientError> {
    client
        .post(
            &format!("/api/apps/{app}/environments/{to}/promote"),
            &json!({ "from": from }),
        )
        .await
}

pub async fn sync(
    client: &Client,
    app: &str,
    from: &str,
    to: &str,
    force: bool,
) -> Result<Value, ClientError> {
    client
        .post(
            &format!("/api/apps/{app}/sync"),
            &json!({ "from": from, "to": to, "force": force }),
        )
        .await
}

pub async fn releases(
    client: &Client,
    app: &str,
    env: &str,
    out: Output,
) -> Result<ExitCode, ClientError> {
    let path = format!("/api/apps/{app}/environments/{env}/releases");
    let list = client.get(&path).await?;
    if out.json {
        outln!("{list:#}");
        return Ok(ExitCode::SUCCESS);
    }
    let list: ReleasesAnswer = read(&path, &list)?;
    for r in &list.releases {
        let mark = if r.live {
            out.paint("32", "live")
        } else if r.failed {
            // Its own deploy failed or was rolled back: `rollback --to` it needs --force.
            out.paint("31", text(r.status.map(DeployStatus::as_str)))
        } else if r.previous {
            "previous".into()
        } else {
            String::new()
        };
        let message = message_by(r.message.as_deref(), r.author.as_deref(), 50);
        // The mark is padded before painting so colour codes never shift the message.
        let pad = " ".repeat(11usize.saturating_sub(visible_len(&mark)));
        outln!(
            "{:<27} {:<8} {mark}{pad} {message}",
            r.release,
            short(r.commit.as_deref())
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `cancel ID`: a queued or waiting deploy ends `cancelled`.
pub async fn cancel(client: &Client, id: &str, out: Output) -> Result<ExitCode, ClientError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        eprintln!("stagehand: {id:?} is not a deploy id (a number, as `status` shows)");
        return Ok(ExitCode::from(2));
    }
    let answer = client
        .post(&format!("/api/deploys/{id}/cancel"), &json!({}))
        .await?;
    created(client, answer, false, out).await
}

/// `reload`: the server reads its config again; prints what changed.
pub async fn reload(client: &Client, out: Output) -> Result<ExitCode, ClientError> {
    let answer = client.post("/api/reload", &json!({})).await?;
    if out.json {
        outln!("{answer:#}");
        return Ok(ExitCode::SUCCESS);
    }
    let ReloadAnswer { changes, .. } = read("/api/reload", &answer)?;
    if changes.is_empty() {
        outln!("reloaded: nothing changed");
    }
    for change in changes {
        outln!("reloaded: {change}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `logs ID` or `logs APP/ENV` (that environment's latest deploy).
pub async fn logs(
    client: &Client,
    target: &str,
    follow: bool,
    out: Output,
) -> Result<ExitCode, ClientError> {
    let id = match target.split_once('/') {
        Some((app, env)) => {
            let path = format!("/api/deploys?app={app}&environment={env}&limit=1");
            let list: DeploysAnswer = read(&path, &client.get(&path).await?)?;
            list.deploys
                .first()
                .map(|d| d.id.to_string())
                .ok_or_else(|| ClientError::Api {
                    status: 404,
                    message: format!("{app}/{env} has no deploys yet"),
                })?
        }
        None => target.to_owned(),
    };
    if follow {
        return follow_to_end(client, &id, out).await;
    }
    let text = client.log_text(&id).await?;
    if out.json {
        outln!("{}", json!({ "id": id, "log": text }));
    } else {
        text.lines().for_each(|line| out.log_line(line));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Output = Output {
        json: false,
        color: false,
    };

    /// A deploy as the API writes it.
    fn deploy(id: &str, status: &str, message: Option<&str>, author: Option<&str>) -> Value {
        json!({
            "id": id, "app": "shop", "environment": "staging", "base_environment": "staging",
            "ref": "refs/heads/develop", "commit": "3f2a1c9d0e", "trigger": "push",
            "status": status, "reason": null, "reason_code": null, "message": message,
            "author": author, "release": null, "forced": false, "from": null,
            "created_at": "2026-12-01T10:00:00Z", "started_at": null, "finished_at": null,
            "stages": [], "log_url": format!("/api/deploys/{id}/log"),
        })
    }

    fn env(name: &str, temporary: bool, release: Option<&str>) -> Value {
        json!({
            "name": name, "temporary": temporary, "branch": "develop",
            "fed_by": "branch develop", "base": null, "protected": false,
            "auto_deploy": true, "follows_tags": false,
            "live_release": release, "live_commit": release.map(|_| "3f2a1c9d0e"),
            "live_deploy": release.map(|_| deploy("11", "succeeded", Some("Add cart totals"), Some("Ada"))),
            "last_deploy": deploy("12", "failed", None, None),
            "pending": null, "process": null, "address": null, "pinned": false,
            "expires_at": null,
        })
    }

    fn typed(apps: Value) -> AppsAnswer {
        serde_json::from_value(apps).unwrap()
    }

    /// Issue 16 item 17: a long temporary name widens its column instead of pushing the
    /// rest of its row out of line.
    #[test]
    fn status_columns_line_up_with_long_names() {
        let long = "preview-feature-a-rather-long-branch-name-for-a-preview-env";
        let apps = json!({ "apps": [{ "name": "shop", "github": "acme/shop", "environments": [
            env("staging", false, Some("20261201T100000Z-3f2a1c9")),
            env(long, true, None),
        ]}]});
        let apps = typed(apps);
        let lines = status_table(&apps, None, PLAIN);
        assert_eq!(lines.len(), 3, "{lines:#?}");
        let column = |line: &str, cell: &str| line.find(cell).unwrap();
        let release_at = column(&lines[0], "LIVE RELEASE");
        assert_eq!(
            column(&lines[1], "20261201T100000Z"),
            release_at,
            "{lines:#?}"
        );
        assert_eq!(
            lines[2].find(" -").map(|i| i + 1),
            Some(release_at),
            "{lines:#?}"
        );
        let last_at = column(&lines[0], "LAST DEPLOY");
        for line in &lines[1..] {
            assert_eq!(column(line, "#12"), last_at, "{lines:#?}");
        }
        assert!(lines[2].contains(&format!("{long} (temp)")));
        assert!(lines[1].contains("Add cart totals (Ada)"), "{lines:#?}");
        assert!(
            lines[1].ends_with("(live release unchanged)"),
            "a failed last attempt is told apart from the live release: {lines:#?}"
        );
        assert!(status_table(&apps, Some("blog"), PLAIN).len() == 1);
    }

    /// An environment that `runs` shows where its live process listens, under its row.
    #[test]
    fn status_shows_the_process_of_an_environment_that_runs() {
        let mut staging = env("staging", false, Some("20261201T100000Z-3f2a1c9"));
        staging["process"] = json!({
            "state": "running", "pid": 4242, "port": 20147, "restarts": 2,
            "release": "20261201T100000Z-3f2a1c9",
        });
        let apps = typed(
            json!({ "apps": [{ "name": "shop", "github": "acme/shop", "environments": [staging] }] }),
        );
        let lines = status_table(&apps, None, PLAIN);
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(
            lines[2].contains("process: running pid 4242 on 127.0.0.1:20147, 2 restarts"),
            "{lines:#?}"
        );
    }

    #[test]
    fn log_lines_keep_only_stagehand_s_own_colours() {
        let colour = Output {
            json: false,
            color: true,
        };
        let plain = Output {
            json: false,
            color: false,
        };
        let cases = [
            (
                "T build   out  \u{1b}]0;owned\u{7}\u{1b}[2Jhello",
                "T build   out  hello",
                "T build   out  hello",
            ),
            (
                "T build   err  \u{1b}[31mboom",
                "\u{1b}[31mT build   err  boom\u{1b}[0m",
                "T build   err  boom",
            ),
            (
                "T deploy  info succeeded",
                "\u{1b}[2mT deploy  info succeeded\u{1b}[0m",
                "T deploy  info succeeded",
            ),
        ];
        for (line, coloured, uncoloured) in cases {
            assert_eq!(colour.render_log_line(line), coloured, "{line:?}");
            assert_eq!(plain.render_log_line(line), uncoloured, "{line:?}");
        }
    }
}
