//! Forwarding a request to an environment's live app process on 127.0.0.1: bodies
//! streamed both ways (never buffered whole), hop-by-hop headers dropped,
//! `X-Forwarded-For`/`-Proto`/`-Host` set, size and time limits. HTTP is actix-web
//! (in) and awc (out); nothing here parses HTTP itself. WebSocket upgrades go to
//! `websocket.rs` instead, which shares the header rules below.

use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::Stream;

use super::in_flight::Ticket;

/// Longest passing a request on (its body included) may take until the response headers
/// arrive; the response body then has no time limit (awc sets none on it by default),
/// so long downloads and event streams pass.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest request body passed on.
pub const MAX_REQUEST_BODY: u64 = 256 * 1024 * 1024;
/// Largest response body passed back.
pub const MAX_RESPONSE_BODY: u64 = 4 * 1024 * 1024 * 1024;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub(super) fn hop_by_hop(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = HOP_BY_HOP.iter().map(|s| (*s).to_owned()).collect();
    for value in headers.get_all(header::CONNECTION) {
        if let Ok(text) = value.to_str() {
            names.extend(text.split(',').map(|t| t.trim().to_ascii_lowercase()));
        }
    }
    names
}

/// A body stream that fails once it has passed `limit` bytes; it holds the request's
/// drain ticket (if any), so the request counts as in flight until its body is done.
struct Limited<S> {
    inner: S,
    left: u64,
    _ticket: Option<Ticket>,
}

#[derive(Debug, thiserror::Error)]
#[error("body larger than the front door's limit")]
struct TooLarge;

impl<S, E> Stream for Limited<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn std::error::Error>>,
{
    type Item = Result<Bytes, Box<dyn std::error::Error>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let len = chunk.len() as u64;
                if len > self.left {
                    return Poll::Ready(Some(Err(TooLarge.into())));
                }
                self.left -= len;
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The forwarded headers: incoming values kept only from a trusted proxy.
pub(super) fn forwarded(req: &HttpRequest, trusted: &[IpAddr]) -> [(HeaderName, String); 3] {
    let peer = req.peer_addr().map(|a| a.ip());
    let from_trusted = peer.is_some_and(|ip| trusted.contains(&ip));
    let incoming = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|_| from_trusted)
            .map(str::to_owned)
    };
    let peer_text = peer.map(|ip| ip.to_string()).unwrap_or_default();
    let for_ = match incoming("x-forwarded-for") {
        Some(chain) => format!("{chain}, {peer_text}"),
        None => peer_text,
    };
    let proto = incoming("x-forwarded-proto").unwrap_or_else(|| "http".into());
    let host = incoming("x-forwarded-host").unwrap_or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    });
    [
        (HeaderName::from_static("x-forwarded-for"), for_),
        (HeaderName::from_static("x-forwarded-proto"), proto),
        (HeaderName::from_static("x-forwarded-host"), host),
    ]
}

fn bad_gateway(message: &str) -> HttpResponse {
    HttpResponse::BadGateway()
        .content_type("text/plain; charset=utf-8")
        .body(format!("{message}\n"))
}

pub async fn forward(
    req: &HttpRequest,
    payload: web::Payload,
    port: u16,
    client: &awc::Client,
    trusted: &[IpAddr],
    ticket: Option<Ticket>,
) -> HttpResponse {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut out = client
        .request(req.method().clone(), url)
        .no_decompress()
        .timeout(RESPONSE_TIMEOUT);
    let drop_names = hop_by_hop(req.headers());
    for (name, value) in req.headers() {
        let dropped = drop_names.iter().any(|d| d == name.as_str())
            || name.as_str().starts_with("x-forwarded-");
        if !dropped {
            out = out.append_header((name.clone(), value.clone()));
        }
    }
    for (name, value) in forwarded(req, trusted) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            out = out.insert_header((name, value));
        }
    }
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|n| n > MAX_REQUEST_BODY) {
        return HttpResponse::PayloadTooLarge().finish();
    }
    let body = Limited {
        inner: payload,
        left: MAX_REQUEST_BODY,
        _ticket: None,
    };
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let sent = match length {
        Some(len) => {
            out.send_body(actix_web::body::SizedStream::new(len, body))
                .await
        }
        None if chunked => out.send_stream(body).await,
        None => out.send().await,
    };
    let response = match sent {
        Ok(response) => response,
        Err(awc::error::SendRequestError::Timeout) => {
            return HttpResponse::GatewayTimeout()
                .content_type("text/plain; charset=utf-8")
                .body("the app did not answer in time\n");
        }
        Err(e) => {
            tracing::debug!(error = %e, port, "proxying failed");
            return bad_gateway("the app is not answering");
        }
    };
    let mut back = HttpResponse::build(response.status());
    let drop_names = hop_by_hop(response.headers());
    for (name, value) in response.headers() {
        if !drop_names.iter().any(|d| d == name.as_str()) && name != header::CONTENT_LENGTH {
            back.append_header((name.clone(), value.clone()));
        }
    }
    let length = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = Limited {
        inner: response,
        left: MAX_RESPONSE_BODY,
        _ticket: ticket,
    };
    match length {
        Some(len) => back.body(actix_web::body::SizedStream::new(len, body)),
        None => back.streaming(body),
    }
}
