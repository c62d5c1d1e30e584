//! WebSocket upgrades passed through to an environment's app process, as a byte tunnel.
//!
//! The front door does the two handshakes (the client's, answered with the key the
//! client sent; the app's, made by awc's WebSocket client with its own key) and then
//! copies bytes both ways without reading frames: text, binary, fragments, pings,
//! pongs and close frames reach the other side exactly as sent, and an extension the
//! client offers and the app accepts (`permessage-deflate`) works, because the offer and
//! the answer are passed on. HTTP is actix-web (in: after a `101` its request payload
//! is the raw connection and its response body goes out unframed) and awc (out);
//! nothing here parses HTTP or WebSocket frames itself.
//!
//! A tunnel ends when either side closes: the app's end closing (its close frame
//! answered, or the process retired) closes the client's, and the client's closing
//! shuts the app's side for writing. A tunnel is not a request in flight for the drain
//! (`in_flight.rs`): it lasts until the old process is retired, and browsers reconnect.

use std::net::IpAddr;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::{StreamExt, stream};
use tokio::io::AsyncWriteExt;

use super::proxy::{self, RESPONSE_TIMEOUT};

/// Whether the request asks to become a WebSocket (any `Upgrade` is routed here; one
/// that is not a valid WebSocket handshake is refused with 400).
pub fn is_upgrade(req: &HttpRequest) -> bool {
    req.headers().contains_key(header::UPGRADE)
}

/// Handshake headers the client's side and the app's side each have their own of.
fn handshake_own(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "sec-websocket-key" | "sec-websocket-version" | "sec-websocket-accept"
    )
}

fn plain(status: StatusCode, text: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(format!("{text}\n"))
}

/// Connects to the app on `port` and, once it accepted, answers the client `101` and
/// copies bytes both ways until either side closes.
pub async fn tunnel(
    req: &HttpRequest,
    mut payload: web::Payload,
    port: u16,
    client: &awc::Client,
    trusted: &[IpAddr],
) -> HttpResponse {
    if let Err(e) = actix_http::ws::verify_handshake(req.head()) {
        return plain(
            StatusCode::BAD_REQUEST,
            &format!("not a WebSocket handshake: {e}"),
        );
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return plain(StatusCode::BAD_REQUEST, "no Sec-WebSocket-Key");
    };
    let accept = actix_http::ws::hash_key(key.as_bytes());
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut out = client.ws(format!("http://127.0.0.1:{port}{path}"));
    let drop_names = proxy::hop_by_hop(req.headers());
    for (name, value) in req.headers() {
        let dropped = drop_names.iter().any(|d| d == name.as_str())
            || name.as_str().starts_with("x-forwarded-")
            || handshake_own(name);
        if !dropped {
            out = out.header(name.clone(), value.clone());
        }
    }
    for (name, value) in proxy::forwarded(req, trusted) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            out = out.set_header(name, value);
        }
    }
    let (response, framed) = match out.connect().await {
        Ok(connected) => connected,
        // The app answered, but not with an upgrade: its status goes back (a 404 for a
        // path it has no socket at, a 403 for an origin it refuses).
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
            return plain(status, "the app did not accept the WebSocket");
        }
        Err(awc::error::WsClientError::SendRequest(awc::error::SendRequestError::Timeout)) => {
            return plain(
                StatusCode::GATEWAY_TIMEOUT,
                &format!(
                    "the app did not answer the WebSocket handshake within {}s",
                    RESPONSE_TIMEOUT.as_secs()
                ),
            );
        }
        Err(e) => {
            tracing::debug!(error = %e, port, "WebSocket handshake with the app failed");
            return plain(StatusCode::BAD_GATEWAY, "the app is not answering");
        }
    };

    let mut back = HttpResponse::SwitchingProtocols();
    back.upgrade("websocket");
    let drop_names = proxy::hop_by_hop(response.headers());
    for (name, value) in response.headers() {
        let dropped = drop_names.iter().any(|d| d == name.as_str())
            || handshake_own(name)
            || name == header::CONTENT_LENGTH;
        if !dropped {
            back.append_header((name.clone(), value.clone()));
        }
    }
    if let Ok(accept) = HeaderValue::from_bytes(&accept) {
        back.insert_header((header::SEC_WEBSOCKET_ACCEPT, accept));
    }

    // What awc read past the app's handshake answer (frames the app sent at once) goes
    // first; what it had not written yet (nothing, after a handshake) is written first.
    let parts = framed.into_parts();
    let (from_app, mut to_app) = tokio::io::split(parts.io);
    let pending_out = parts.write_buf;
    actix_web::rt::spawn(async move {
        if !pending_out.is_empty() && to_app.write_all(&pending_out).await.is_err() {
            return;
        }
        while let Some(Ok(chunk)) = payload.next().await {
            if to_app.write_all(&chunk).await.is_err() {
                return;
            }
        }
        // The client's side is closed (or broke): the app sees its end of the stream.
        let _ = to_app.shutdown().await;
    });
    let first: BytesMut = parts.read_buf;
    let head =
        stream::iter((!first.is_empty()).then(|| Ok::<Bytes, std::io::Error>(first.freeze())));
    // 64 KiB reads: a big frame passes in few chunks (the default is 4 KiB).
    let from_app = tokio_util::io::ReaderStream::with_capacity(from_app, 64 * 1024);
    back.streaming(head.chain(from_app))
}
