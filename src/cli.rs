//! The client subcommands (`status`, `deploy`, `rollback`, `promote`, `sync`,
//! `releases`, `logs`): each is one or two `/api` calls and a rendering. On a terminal
//! the output has colour; piped, plain lines; `--json` prints what the API returned.

use std::io::IsTerminal;
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::client::{Client, ClientError};
use crate::core::log_text::strip_controls;

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
        println!("{}", self.render_log_line(line));
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
            "running" | "queued" => "33",
            _ => "2",
        };
        self.paint(code, status)
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
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
        println!("{apps:#}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<10} {:<28} {:<27} {:<8} {:<12} LAST DEPLOY",
        "APP", "ENVIRONMENT", "LIVE RELEASE", "COMMIT", "FED BY"
    );
    for a in apps["apps"].as_array().into_iter().flatten() {
        if app.is_some_and(|name| a["name"] != name) {
            continue;
        }
        for env in a["environments"].as_array().into_iter().flatten() {
            let last = &env["last_deploy"];
            let last_text = if last.is_null() {
                "-".to_owned()
            } else {
                format!(
                    "#{} {} {}",
                    text(&last["id"]),
                    out.status(text(&last["status"])),
                    text(&last["created_at"])
                )
            };
            let mut name = text(&env["name"]).to_owned();
            if env["temporary"] == true {
                name.push_str(" (temp)");
            }
            println!(
                "{:<10} {:<28} {:<27} {:<8} {:<12} {last_text}",
                text(&a["name"]),
                name,
                text(&env["live_release"]),
                short(&env["live_commit"]),
                text(&env["branch"]),
            );
            if !env["pending"].is_null() {
                println!(
                    "{:<10} {:<28} pending: {} waits for deploy/promote",
                    "",
                    "",
                    short(&env["pending"]["commit"])
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
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
            println!("{deploy:#}");
        } else {
            println!(
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
        println!("{deploy:#}");
    } else {
        let reason = deploy["reason"]
            .as_str()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        println!("deploy {id} {}{reason}", out.status(status));
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
) -> Result<Value, ClientError> {
    let body = match to {
        Some(r) => json!({ "release": r }),
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
        println!("{list:#}");
        return Ok(ExitCode::SUCCESS);
    }
    for r in list["releases"].as_array().into_iter().flatten() {
        let mark = if r["live"] == true {
            out.paint("32", "live")
        } else if r["previous"] == true {
            "previous".into()
        } else {
            String::new()
        };
        println!(
            "{:<27} {:<8} {mark}",
            text(&r["release"]),
            short(&r["commit"])
        );
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
        println!("{}", json!({ "id": id, "log": text }));
    } else {
        text.lines().for_each(|line| out.log_line(line));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

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
