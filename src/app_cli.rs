//! The CLI side of app processes: `stagehand restart|start|stop APP ENV` and
//! `stagehand logs APP/ENV --app [--follow]`, over the same `/api` as the dashboard.
//! Kept apart from `cli.rs` (deploy commands) because it is its own feature.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::api_types::StopAnswer;
use crate::cli::Output;
use crate::client::{Client, ClientError, read};

/// `restart` or `start`: queues the blue/green restart; the answer is a deploy.
pub async fn restart(
    client: &Client,
    verb: &str,
    app: &str,
    env: &str,
) -> Result<Value, ClientError> {
    client
        .post(
            &format!("/api/apps/{app}/environments/{env}/{verb}"),
            &json!({}),
        )
        .await
}

pub async fn stop(
    client: &Client,
    app: &str,
    env: &str,
    out: Output,
) -> Result<ExitCode, ClientError> {
    let answer = client
        .post(
            &format!("/api/apps/{app}/environments/{env}/stop"),
            &json!({}),
        )
        .await?;
    let stop: StopAnswer = read("the stop answer", &answer)?;
    if out.json {
        println!("{answer:#}");
    } else if stop.stopped {
        println!(
            "{app}/{env}: stopped (it stays stopped until `stagehand start {app} {env}` or the next deploy)"
        );
    } else {
        println!("{app}/{env}: nothing was running");
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the app log of `APP/ENV`; with `follow`, keeps printing new output until
/// interrupted.
pub async fn app_log(client: &Client, target: &str, follow: bool) -> Result<ExitCode, ClientError> {
    let (app, env) = target.split_once('/').ok_or_else(|| ClientError::Api {
        status: 400,
        message: format!("{target:?}: the app log is addressed as APP/ENV"),
    })?;
    let url = format!(
        "{}/api/apps/{app}/environments/{env}/app-log{}",
        client.base,
        if follow { "?follow=1" } else { "" }
    );
    let req = client.authorize(client.http(Duration::from_secs(24 * 3600)).get(&url));
    let mut resp = req.send().await.map_err(|e| ClientError::Unreachable {
        url: url.clone(),
        detail: e.to_string(),
    })?;
    if !resp.status().is_success() {
        let status = resp.status().as_u16();
        let body = resp.body().await.unwrap_or_default();
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let message = value["error"].as_str().unwrap_or("refused").to_owned();
        return Err(if status == 401 {
            ClientError::Unauthorized(message)
        } else {
            ClientError::Api { status, message }
        });
    }
    let mut stdout = std::io::stdout();
    while let Some(chunk) = resp.next().await {
        let chunk = chunk.map_err(|e| ClientError::Protocol {
            url: url.clone(),
            detail: e.to_string(),
        })?;
        // A closed stdout (`| head`) ends the command quietly.
        if stdout
            .write_all(&chunk)
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}
