//! `stagehand serve`: opens the store, binds the listener and runs the HTTP server
//! until SIGINT or SIGTERM.

use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::http::{self, AppState, metrics::Metrics};
use crate::store::Store;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let state_dir = &config.server.state_dir;
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating state_dir {}", state_dir.display()))?;
    let store = Store::open(&state_dir.join("stagehand.db"))?;
    let listener = std::net::TcpListener::bind(config.server.listen)
        .with_context(|| format!("binding server.listen {}", config.server.listen))?;
    if config.server.api_token.is_none() {
        tracing::warn!(
            "{} is not set: the API refuses every request",
            config.server.api_token_env
        );
    }
    tracing::info!(listen = %config.server.listen, "stagehand serving");
    let state = AppState {
        config: Arc::new(config),
        store,
        metrics: Arc::new(Metrics::default()),
        clock: http::system_clock(),
    };
    let server = http::server(listener, state, 2)?;
    let handle = server.handle();
    let running = tokio::spawn(server);
    shutdown_signal().await;
    tracing::info!("shutting down");
    handle.stop(true).await;
    running.await.context("HTTP server task")??;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}
