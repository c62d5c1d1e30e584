//! Following a deploy's log: `GET /api/deploys/{id}/log?follow=1` (plain text) and
//! `GET /api/deploys/{id}/events` (Server-Sent Events: `log`, `stage`, `status`;
//! resumes after the line in `Last-Event-ID` or `?after=N`).
//!
//! One follower task per request feeds a channel that becomes the response body. It
//! waits while the deploy is queued, replays what a running deploy logged so far and
//! then forwards it live (the hub hands both over under one lock, so nothing is lost
//! or doubled), and for an ended deploy reads the file. A follower that falls behind
//! the broadcast re-reads the file from its last line. The task ends when the deploy
//! ends or the client goes away (its next send fails).

use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use super::AppState;
use super::auth::Authorized;
use super::error::HttpError;
use crate::core::duration::format_elapsed;
use crate::core::ids::DeployId;
use crate::logs::LogEvent;
use crate::ops::deploys;

/// How often a queued deploy's status is checked while waiting for its log to open.
const WAIT_POLL: Duration = Duration::from_secs(1);
/// A comment line this often keeps proxies from closing an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

enum Chunk {
    Event(LogEvent),
    KeepAlive,
}

/// Under `/api`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/deploys/{id}/log", web::get().to(log))
        .route("/deploys/{id}/events", web::get().to(events));
}

#[derive(serde::Deserialize)]
pub struct LogQuery {
    follow: Option<String>,
}

async fn log(
    _: Authorized,
    id: web::Path<String>,
    query: web::Query<LogQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let deploy_id = existing(&state, &id).await?;
    let follow = query
        .follow
        .as_deref()
        .is_some_and(|f| !matches!(f, "0" | "false" | ""));
    if !follow {
        let path = state.logs.path(deploy_id);
        let bytes = web::block(move || std::fs::read(&path).unwrap_or_default()).await?;
        return Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(bytes));
    }
    let rx = spawn_follower(state.get_ref().clone(), deploy_id, 0);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await? {
                Chunk::Event(LogEvent::Line { text, .. }) => {
                    return Some((Ok::<_, actix_web::Error>(Bytes::from(text + "\n")), rx));
                }
                Chunk::Event(_) | Chunk::KeepAlive => continue,
            }
        }
    });
    Ok(streaming("text/plain; charset=utf-8").streaming(body))
}

#[derive(serde::Deserialize)]
pub struct EventsQuery {
    /// Resume after this line, like `Last-Event-ID`: a browser's `EventSource` cannot
    /// set that header on its first connection, so a page that already shows lines
    /// 1..=N asks for `?after=N`. Its reconnects send the header, which wins when later.
    after: Option<u64>,
}

async fn events(
    _: Authorized,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<EventsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let deploy_id = existing(&state, &id).await?;
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let after = last_event_id.max(query.after.unwrap_or(0));
    let rx = spawn_follower(state.get_ref().clone(), deploy_id, after);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, actix_web::Error>(Bytes::from(sse(&chunk))), rx))
    });
    Ok(streaming("text/event-stream").streaming(body))
}

fn streaming(content_type: &str) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::Ok();
    builder
        .content_type(content_type)
        .insert_header(("Cache-Control", "no-cache"))
        // nginx would otherwise buffer the stream, whatever its own config says.
        .insert_header(("X-Accel-Buffering", "no"));
    builder
}

async fn existing(state: &AppState, id: &str) -> Result<DeployId, HttpError> {
    Ok(deploys::find_deploy(&state.ops(), id).await?.id)
}

/// One SSE frame. Multi-line data is split into `data:` lines, as the format requires.
fn sse(chunk: &Chunk) -> String {
    let frame = |id: Option<u64>, event: &str, data: &str| {
        let mut out = String::new();
        if let Some(id) = id {
            out.push_str(&format!("id: {id}\n"));
        }
        out.push_str(&format!("event: {event}\n"));
        for line in data.trim_end_matches('\n').split('\n') {
            out.push_str("data: ");
            out.push_str(line.trim_end_matches('\r'));
            out.push('\n');
        }
        out.push('\n');
        out
    };
    match chunk {
        Chunk::KeepAlive => ": keep-alive\n\n".into(),
        Chunk::Event(LogEvent::Line { seq, text }) => frame(Some(*seq), "log", text),
        Chunk::Event(LogEvent::Stage {
            name,
            status,
            duration_ms,
        }) => {
            let mut data = json!({ "name": name, "status": status, "duration_ms": duration_ms });
            // Once a stage has ended, its duration as the dashboard shows it: the page
            // then needs no formatter of its own to update the row live.
            if let Some(ms) = duration_ms {
                data["duration"] = json!(format_elapsed(*ms));
            }
            frame(None, "stage", &data.to_string())
        }
        Chunk::Event(LogEvent::Status { status, reason }) => frame(
            None,
            "status",
            &json!({ "status": status, "reason": reason }).to_string(),
        ),
    }
}

fn spawn_follower(state: AppState, id: DeployId, after: u64) -> mpsc::Receiver<Chunk> {
    let (tx, rx) = mpsc::channel(256);
    actix_web::rt::spawn(async move {
        let _ = follow(&state, id, after, &tx).await;
    });
    rx
}

/// `Err(())`: the client went away.
async fn follow(
    state: &AppState,
    id: DeployId,
    mut last_seq: u64,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), ()> {
    let send = |chunk: Chunk| async move { tx.send(chunk).await.map_err(drop) };
    let mut idle = tokio::time::Instant::now();
    // Subscribed before the first check, so an open between check and wait still wakes us.
    let mut opened = state.logs.opened();
    loop {
        opened.borrow_and_update();
        if let Some((history, mut rx)) = state.logs.follow(id) {
            // Lines older than the kept history come from the file, which has every
            // line written before the broadcast of it.
            let first_kept = history.iter().find_map(|e| match e {
                LogEvent::Line { seq, .. } => Some(*seq),
                _ => None,
            });
            if let Some(first) = first_kept
                && first > last_seq + 1
            {
                for (seq, text) in file_lines(state, id, last_seq).await {
                    if seq >= first {
                        break;
                    }
                    forward(&send, LogEvent::Line { seq, text }, &mut last_seq).await?;
                }
            }
            for event in history {
                if forward(&send, event, &mut last_seq).await? {
                    return Ok(());
                }
            }
            loop {
                match tokio::time::timeout(KEEPALIVE, rx.recv()).await {
                    Ok(Ok(event)) => {
                        if forward(&send, event, &mut last_seq).await? {
                            return Ok(());
                        }
                    }
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                        for (seq, text) in file_lines(state, id, last_seq).await {
                            forward(&send, LogEvent::Line { seq, text }, &mut last_seq).await?;
                        }
                    }
                    // The writer is gone: the deploy ended; the store has the outcome.
                    Ok(Err(broadcast::error::RecvError::Closed)) => break,
                    Err(_) => send(Chunk::KeepAlive).await?,
                }
            }
        }
        let deploy = state.store.run(move |s| s.deploy(id)).await.ok().flatten();
        let Some(deploy) = deploy else { return Ok(()) };
        if deploy.status.is_terminal() {
            for (seq, text) in file_lines(state, id, last_seq).await {
                forward(&send, LogEvent::Line { seq, text }, &mut last_seq).await?;
            }
            for stage in deploy.stages {
                send(Chunk::Event(LogEvent::Stage {
                    name: stage.name,
                    status: stage.status,
                    duration_ms: stage.duration_ms,
                }))
                .await?;
            }
            send(Chunk::Event(LogEvent::Status {
                status: deploy.status,
                reason: deploy.reason,
            }))
            .await?;
            return Ok(());
        }
        // Woken when any log opens; the poll is the fallback for deploys that end
        // without a log (an app removed from the config) and for keep-alives.
        tokio::select! {
            _ = opened.changed() => {}
            _ = tokio::time::sleep(WAIT_POLL) => {}
        }
        if idle.elapsed() >= KEEPALIVE {
            send(Chunk::KeepAlive).await?;
            idle = tokio::time::Instant::now();
        }
    }
}

/// Sends `event` unless it is a line already sent; returns whether the deploy ended.
async fn forward<F, Fut>(send: &F, event: LogEvent, last_seq: &mut u64) -> Result<bool, ()>
where
    F: Fn(Chunk) -> Fut,
    Fut: std::future::Future<Output = Result<(), ()>>,
{
    let ended = matches!(&event, LogEvent::Status { status, .. } if status.is_terminal());
    if let LogEvent::Line { seq, .. } = &event {
        if *seq <= *last_seq {
            return Ok(false);
        }
        *last_seq = *seq;
    }
    send(Chunk::Event(event)).await?;
    Ok(ended)
}

/// Lines of the log file after line `after`, numbered from 1.
async fn file_lines(state: &AppState, id: DeployId, after: u64) -> Vec<(u64, String)> {
    let path = state.logs.path(id);
    let text = web::block(move || std::fs::read(&path).unwrap_or_default())
        .await
        .unwrap_or_default();
    String::from_utf8_lossy(&text)
        .lines()
        .enumerate()
        .map(|(i, line)| (i as u64 + 1, line.to_owned()))
        .filter(|(seq, _)| *seq > after)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::deploy::DeployStatus;
    use crate::core::stage::StageName;

    #[test]
    fn sse_frames() {
        let line = Chunk::Event(LogEvent::Line {
            seq: 7,
            text: "hello".into(),
        });
        assert_eq!(sse(&line), "id: 7\nevent: log\ndata: hello\n\n");
        let status = Chunk::Event(LogEvent::Status {
            status: DeployStatus::Failed,
            reason: Some("two\nlines".into()),
        });
        assert_eq!(
            sse(&status),
            "event: status\ndata: {\"reason\":\"two\\nlines\",\"status\":\"failed\"}\n\n"
        );
        let multi = Chunk::Event(LogEvent::Line {
            seq: 1,
            text: "a\nb\n".into(),
        });
        assert_eq!(sse(&multi), "id: 1\nevent: log\ndata: a\ndata: b\n\n");
        assert_eq!(sse(&Chunk::KeepAlive), ": keep-alive\n\n");
        let ended = Chunk::Event(LogEvent::Stage {
            name: StageName::Build,
            status: DeployStatus::Succeeded,
            duration_ms: Some(12_345),
        });
        assert_eq!(
            sse(&ended),
            "event: stage\ndata: {\"duration\":\"12.3 s\",\"duration_ms\":12345,\"name\":\"build\",\"status\":\"succeeded\"}\n\n"
        );
    }
}
