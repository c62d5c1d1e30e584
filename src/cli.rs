//! The client subcommands (`status`, `deploy`, `rollback`, `promote`, `sync`,
//! `releases`, `logs`): each is one or two `/api` calls and a rendering. On a terminal
//! the output has colour; piped, plain lines; `--json` prints what the API returned.

use std::io::IsTerminal;
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::client::{Client, ClientError};
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

    fn status(&self, status: &str) -> String {
        let code = match status {
            "succeeded" => "32",
            "failed" | "rolled_back" | "interrupted" | "cancelled" => "31",
            "running" | "queued" | "waiting" => "33",
            _ => "2",
        };
        self.paint(code, status)
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
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

fn short(v: &Value) -> String {
    v.as_str()
        .map(|s| s.chars().take(7).collect())
        .unwrap_or_else(|| "-".into())
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
    for line in status_table(&apps, app, out) {
        outln!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The `status` table for `GET /api/apps`, optionally one app's rows only. Columns are
/// as wide as their longest cell (temporary environment names run to 63 characters);
/// the last column is free-form, so colour codes in it never shift the others.
pub fn status_table(apps: &Value, only: Option<&str>, out: Output) -> Vec<String> {
    const HEADER: [&str; 6] = [
        "APP",
        "ENVIRONMENT",
        "FED BY",
        "LIVE RELEASE",
        "COMMIT",
        "MESSAGE",
    ];
    let mut rows: Vec<([String; 6], String)> = Vec::new();
    for a in apps["apps"].as_array().into_iter().flatten() {
        if only.is_some_and(|name| a["name"] != name) {
            continue;
        }
        for env in a["environments"].as_array().into_iter().flatten() {
            let last = &env["last_deploy"];
            // The last attempt is shown as such when it is not what is live: a failed
            // deploy leaves the live release as it was.
            let last_text = if last.is_null() {
                "-".to_owned()
            } else {
                let attempt =
                    if env["live_deploy"].is_null() || env["live_deploy"]["id"] == last["id"] {
                        ""
                    } else {
                        " (live release unchanged)"
                    };
                format!(
                    "#{} {} {}{attempt}",
                    text(&last["id"]),
                    out.status(text(&last["status"])),
                    text(&last["created_at"])
                )
            };
            let live = &env["live_deploy"];
            let message = match (live["message"].as_str(), live["author"].as_str()) {
                (Some(m), Some(a)) => format!("{} ({a})", clip(m, 40)),
                (Some(m), None) => clip(m, 40),
                _ => "-".into(),
            };
            let mut name = text(&env["name"]).to_owned();
            if env["temporary"] == true {
                name.push_str(" (temp)");
            }
            rows.push((
                [
                    text(&a["name"]).to_owned(),
                    name,
                    text(&env["branch"]).to_owned(),
                    text(&env["live_release"]).to_owned(),
                    short(&env["live_commit"]),
                    message,
                ],
                last_text,
            ));
            if !env["pending"].is_null() {
                rows.push((
                    Default::default(),
                    format!(
                        "pending: {} waits for deploy/promote",
                        short(&env["pending"]["commit"])
                    ),
                ));
            }
            // Environments that `run`: where the live process listens, or why it does not.
            let process = &env["process"];
            if !process.is_null() {
                let state = text(&process["state"]);
                let mut line = format!("process: {}", out.status(state));
                if let (Some(pid), Some(port)) = (process["pid"].as_i64(), process["port"].as_i64())
                {
                    line.push_str(&format!(" pid {pid} on 127.0.0.1:{port}"));
                }
                if let Some(restarts) = process["restarts"].as_i64().filter(|n| *n > 0) {
                    line.push_str(&format!(", {restarts} restarts"));
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
    let deploy = &answer["deploy"];
    let id = text(&deploy["id"]).to_owned();
    if !follow {
        if out.json {
            outln!("{deploy:#}");
        } else {
            outln!(
                "deploy {id} {}: {}/{} ({}) — {}{}",
                out.status(text(&deploy["status"])),
                text(&deploy["app"]),
                text(&deploy["environment"]),
                text(&deploy["trigger"]),
                client.base,
                text(&deploy["log_url"])
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
    let deploy = client.get(&format!("/api/deploys/{id}")).await?;
    let status = text(&deploy["status"]);
    if out.json {
        outln!("{deploy:#}");
    } else {
        let reason = deploy["reason"]
            .as_str()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        outln!("deploy {id} {}{reason}", out.status(status));
    }
    Ok(if status == "succeeded" {
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
    let list = client
        .get(&format!("/api/apps/{app}/environments/{env}/releases"))
        .await?;
    if out.json {
        outln!("{list:#}");
        return Ok(ExitCode::SUCCESS);
    }
    for r in list["releases"].as_array().into_iter().flatten() {
        let mark = if r["live"] == true {
            out.paint("32", "live")
        } else if r["failed"] == true {
            // Its own deploy failed or was rolled back: `rollback --to` it needs --force.
            out.paint("31", text(&r["status"]))
        } else if r["previous"] == true {
            "previous".into()
        } else {
            String::new()
        };
        let message = match (r["message"].as_str(), r["author"].as_str()) {
            (Some(m), Some(a)) => format!("{} ({a})", clip(m, 50)),
            (Some(m), None) => clip(m, 50),
            _ => "-".into(),
        };
        // The mark is padded before painting so colour codes never shift the message.
        let pad = " ".repeat(11usize.saturating_sub(visible_len(&mark)));
        outln!(
            "{:<27} {:<8} {mark}{pad} {message}",
            text(&r["release"]),
            short(&r["commit"])
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
    let changes: Vec<&str> = answer["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
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
            let list = client
                .get(&format!("/api/deploys?app={app}&environment={env}&limit=1"))
                .await?;
            list["deploys"][0]["id"]
                .as_str()
                .map(str::to_owned)
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

    fn env(name: &str, temporary: bool, release: Option<&str>) -> Value {
        json!({
            "name": name, "temporary": temporary, "branch": "develop",
            "live_release": release, "live_commit": release.map(|_| "3f2a1c9d0e"),
            "live_deploy": release.map(|_| json!({ "id": "11", "message": "Add cart totals", "author": "Ada" })),
            "last_deploy": { "id": "12", "status": "failed", "created_at": "2026-12-01T10:00:00Z" },
            "pending": null,
        })
    }

    /// Issue 16 item 17: a long temporary name widens its column instead of pushing the
    /// rest of its row out of line.
    #[test]
    fn status_columns_line_up_with_long_names() {
        let long = "preview-feature-a-rather-long-branch-name-for-a-preview-env";
        let apps = json!({ "apps": [{ "name": "shop", "environments": [
            env("staging", false, Some("20261201T100000Z-3f2a1c9")),
            env(long, true, None),
        ]}]});
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
        staging["process"] =
            json!({ "state": "running", "pid": 4242, "port": 20147, "restarts": 2 });
        let apps = json!({ "apps": [{ "name": "shop", "environments": [staging] }] });
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
