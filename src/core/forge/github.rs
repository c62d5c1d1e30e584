//! GitHub: `X-Hub-Signature-256: sha256=<hex>`, and the body decoding that predates the
//! other forges (`core::event`, `core::signature`), unchanged.

use super::{AuthError, Headers};
use crate::core::event::{Event, EventError, json_body, parse_event};
use crate::core::signature;

pub fn authenticate(
    secret: &[u8],
    headers: &(impl Headers + ?Sized),
    body: &[u8],
) -> Result<(), AuthError> {
    Ok(signature::verify(
        secret,
        headers.get("x-hub-signature-256"),
        body,
    )?)
}

pub fn precheck(headers: &(impl Headers + ?Sized)) -> Result<(), AuthError> {
    signature::Verifier::new(b"", headers.get("x-hub-signature-256"))?;
    Ok(())
}

pub fn decode(event: &str, content_type: Option<&str>, body: &[u8]) -> Result<Event, EventError> {
    let json = json_body(content_type, body)?;
    parse_event(event, &json)
}
