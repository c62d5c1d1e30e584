//! `stagehand front-door`: the HTTP listener that gives every environment an address.
//! A request's `Host` picks an environment (`core::hosts`); one with a live app process
//! is proxied to its port (`proxy.rs`; a WebSocket upgrade is tunnelled, `websocket.rs`),
//! one with `static` is served from its live release (`static_files.rs`); anything else
//! is a plain 404.
//!
//! It runs as its own process of the same binary, not inside `serve`: it only reads
//! what `serve` publishes (`routes.json`, the `current` links) and the config
//! (`table.rs`), so stopping, restarting or upgrading `serve` never stops it, and it
//! keeps answering on the last known routes meanwhile. What it tells `serve` back is
//! its requests in flight per app port (`in_flight.rs`), so that a process switched
//! away from is stopped only once the requests it is answering are done.

pub(crate) mod address;
pub(crate) mod in_flight;
pub(crate) mod proxy;
pub(crate) mod routes_file;
pub(crate) mod static_files;
pub mod table;
pub(crate) mod websocket;

use std::collections::HashMap;
use std::net::{IpAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use crate::config::Config;
use table::{Follower, Shared, Snapshot, Target};

/// How long a stopping front door lets requests in flight finish.
const DRAIN: Duration = Duration::from_secs(30);

struct State {
    routes: Shared,
    trusted: Vec<IpAddr>,
    in_flight: Arc<in_flight::Counts>,
}

async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().host().map(str::to_owned))
        .unwrap_or_default();
    let upgrade = websocket::is_upgrade(&req);
    // The route is taken and the request counted in one step (see in_flight.rs).
    let routed = state.routes.route(|snapshot| {
        let found = snapshot.config.hosts.resolve(&host)?;
        let port = snapshot.port_of(&found);
        let ticket = port
            .filter(|_| !upgrade)
            .map(|port| state.in_flight.enter(port));
        Some((snapshot.clone(), found, port, ticket))
    });
    let Some((snapshot, found, port, ticket)) = routed else {
        return static_files::not_found();
    };
    if let Some(port) = port {
        return if upgrade {
            websocket::tunnel(&req, payload, port, &client, &state.trusted).await
        } else {
            proxy::forward(&req, payload, port, &client, &state.trusted, ticket).await
        };
    }
    // The blocking pool only when the disk is looked at: a hop there on every proxied
    // request cost 16% of the front door's requests/s (bench/front_door.sh: 4,341 → 5,183).
    let target = if snapshot.target_touches_disk(&found) {
        let snapshot = snapshot.clone();
        let found = found.clone();
        actix_web::rt::task::spawn_blocking(move || snapshot.target(&found)).await
    } else {
        Ok(snapshot.target(&found))
    };
    match target {
        // Only a static directory is left: a port was handled above.
        Ok(Some(Target::Dir(dir))) => static_files::serve(&req, dir).await,
        // A fixed environment that has nothing live yet is still a real address.
        Ok(None) if found.configured == found.environment => HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("nothing is live here yet\n"),
        Ok(_) | Err(_) => static_files::not_found(),
    }
}

/// A running front door.
pub struct FrontDoor {
    pub handle: ServerHandle,
    _follower: Follower,
}

impl FrontDoor {
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// Starts the front door on `listener`, following `config`'s files. `env`: what the
/// config is re-loaded with when its file changes (`None`: never re-loaded). Must run
/// inside an actix system; the returned server must be awaited or spawned.
pub fn start(
    config: Config,
    listener: TcpListener,
    env: Option<HashMap<String, String>>,
) -> std::io::Result<(FrontDoor, Server)> {
    let trusted = config.server.trusted_proxies.clone();
    let counts = Arc::new(in_flight::Counts::default());
    let publisher = in_flight::Publisher::new(
        &config.server.state_dir,
        listener.local_addr()?.port(),
        counts.clone(),
    );
    let routes = Shared::new(Snapshot::read(config)?);
    let follower = Follower::start(routes.clone(), env, Some(publisher));
    let state = web::Data::new(State {
        routes,
        trusted,
        in_flight: counts,
    });
    let server = HttpServer::new(move || {
        // awc clients are per worker thread (not Send); each keeps its own pool of
        // connections to the app processes.
        let client = awc::Client::builder()
            .disable_redirects()
            .timeout(proxy::RESPONSE_TIMEOUT)
            .finish();
        App::new()
            .app_data(state.clone())
            .app_data(web::Data::new(client))
            .app_data(web::PayloadConfig::new(proxy::MAX_REQUEST_BODY as usize))
            .default_service(web::to(handle))
    })
    // A proxied response goes out as its head, then its body as it arrives from the
    // app: two writes. With Nagle on, the second waits for the client's ACK of the
    // first, which a client waiting for the body delays by ~40 ms (measured here:
    // 44 ms added to every keep-alive request; nginx sets tcp_nodelay for the same
    // reason).
    .on_connect(|connection, _| {
        if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .shutdown_timeout(DRAIN.as_secs())
    .listen(listener)?
    .run();
    Ok((
        FrontDoor {
            handle: server.handle(),
            _follower: follower,
        },
        server,
    ))
}

/// `stagehand front-door`: runs until SIGINT/SIGTERM, then drains.
pub async fn serve(config: Config, env: HashMap<String, String>) -> anyhow::Result<()> {
    let Some(address) = config.server.front_door else {
        anyhow::bail!(
            "server.front_door is not set in {}: add front_door = \"127.0.0.1:8080\" to [server]",
            config.file.display()
        );
    };
    let listener = TcpListener::bind(address)
        .map_err(|e| anyhow::anyhow!("binding the front door to {address}: {e}"))?;
    let bound = listener.local_addr()?;
    let (_door, server) = start(config, listener, Some(env))?;
    println!("front door listening on http://{bound}");
    tracing::info!(%bound, "front door listening");
    server.await?;
    Ok(())
}
