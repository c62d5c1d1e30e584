//! What an unauthenticated webhook body may cost before its signature is checked:
//! bytes held at once, hook requests in flight, and how long a body may take to arrive.
//!
//! # Security
//!
//! Anyone can POST to `/hooks/<app>`, and the HMAC can only be checked once the whole
//! body is in, so every byte read before that is spent on a stranger. Three bounds:
//!
//! - **Bytes held at once**, counted as they arrive (never reserved from the client's
//!   `Content-Length`, which may lie). Two pools: bodies that declare at most
//!   [`Limits::small_body`] draw from `small_pool`, every other body (bigger, or chunked
//!   with no declared length) from `large_pool`. GitHub's push payloads are a few KB to
//!   a few hundred KB, so a flood of big bogus bodies fills the large pool and is answered
//!   `503`, while signed pushes keep arriving through the small one.
//! - **Hook requests in flight**: past [`Limits::max_requests`], `503` at once.
//! - **A body read deadline** ([`Limits::read_timeout`]), so a trickling body cannot hold
//!   its connection and its share of the pools: `408`, and the connection is closed.
//!
//! Limit: a flood of many *small* bogus bodies can fill the small pool too; signed
//! pushes then get `503` with `Retry-After` until it passes (GitHub does not retry, so
//! a push lost that way waits for the next one, or `stagehand deploy`).

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::HttpError;

/// GitHub caps payloads at 25 MB; this is the contract's 25 MiB.
pub const MAX_BODY: usize = 25 * 1024 * 1024;

/// The sizes and counts [`IntakeLimits`] enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A body declaring at most this many bytes draws from `small_pool`.
    pub small_body: usize,
    /// Bytes of small bodies held at once.
    pub small_pool: usize,
    /// Bytes of other bodies held at once. The default is above [`MAX_BODY`], so one
    /// body of the largest size GitHub sends fits when nothing else is being read.
    pub large_pool: usize,
    /// Hook requests being handled at once.
    pub max_requests: usize,
    /// From the request's head to the body's last byte.
    pub read_timeout: Duration,
}

impl Default for Limits {
    /// Sized so that bodies never hold more than 16 + 48 MiB at once: with the rest of
    /// the process that stays under 200 MB of RSS (bench/flood.sh measures it). 512
    /// requests in flight is far above the 64 concurrent signed deliveries bench/load.sh
    /// sends. GitHub gives up on a delivery after 10 s, so a body still arriving after
    /// that has nobody waiting for the answer: none of these is worth an operator's
    /// tuning, hence constants.
    fn default() -> Limits {
        Limits {
            small_body: 1024 * 1024,
            small_pool: 16 * 1024 * 1024,
            large_pool: 48 * 1024 * 1024,
            max_requests: 512,
            read_timeout: Duration::from_secs(10),
        }
    }
}

/// The shared pools; one per server.
#[derive(Debug)]
pub struct IntakeLimits {
    limits: Limits,
    small: Arc<Semaphore>,
    large: Arc<Semaphore>,
    requests: Arc<Semaphore>,
}

impl Default for IntakeLimits {
    fn default() -> IntakeLimits {
        IntakeLimits::new(Limits::default())
    }
}

impl IntakeLimits {
    pub fn new(limits: Limits) -> IntakeLimits {
        IntakeLimits {
            small: Arc::new(Semaphore::new(limits.small_pool)),
            large: Arc::new(Semaphore::new(limits.large_pool)),
            requests: Arc::new(Semaphore::new(limits.max_requests)),
            limits,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes of hook bodies held right now.
    pub fn bytes_held(&self) -> usize {
        let held = |pool: &Semaphore, size: usize| size - pool.available_permits();
        held(&self.small, self.limits.small_pool) + held(&self.large, self.limits.large_pool)
    }

    /// Lets one hook request in, or answers `503` when too many are being handled.
    pub fn admit(&self, declared_length: Option<u64>) -> Result<Admission, HttpError> {
        let request = self
            .requests
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy("too many webhook deliveries are being received"))?;
        let small = declared_length.is_some_and(|n| n <= self.limits.small_body as u64);
        Ok(Admission {
            _request: request,
            pool: if small {
                self.small.clone()
            } else {
                self.large.clone()
            },
            held: None,
            read_timeout: self.limits.read_timeout,
        })
    }
}

fn busy(why: &str) -> HttpError {
    HttpError::Busy(format!("{why}; try again shortly"))
}

/// One admitted request: its place among the requests in flight and the bytes it holds.
/// Both are given back when it is dropped, whatever the answer was.
pub struct Admission {
    _request: OwnedSemaphorePermit,
    pool: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    read_timeout: Duration,
}

impl Admission {
    fn hold(&mut self, bytes: usize) -> Result<(), HttpError> {
        let permit = u32::try_from(bytes)
            .ok()
            .and_then(|n| self.pool.clone().try_acquire_many_owned(n).ok())
            .ok_or_else(|| busy("too many webhook bodies are being received at once"))?;
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        Ok(())
    }

    /// Reads the whole body, passing each piece to `on_piece` (the signature check) as
    /// it arrives: the pieces are kept as received and joined once, at the end, into a
    /// buffer of exactly the body's size. Refused with `413` past [`MAX_BODY`], `503`
    /// when the pool is full, `408` after the read deadline.
    pub async fn read_body(
        &mut self,
        mut payload: web::Payload,
        mut on_piece: impl FnMut(&[u8]),
    ) -> Result<Vec<u8>, HttpError> {
        let timeout = self.read_timeout;
        let read = async {
            let mut pieces = Vec::new();
            let mut total = 0usize;
            while let Some(piece) = payload.next().await {
                let piece = piece
                    .map_err(|e| HttpError::BadRequest(format!("cannot read the body: {e}")))?;
                total += piece.len();
                if total > MAX_BODY {
                    return Err(HttpError::TooLarge { limit: MAX_BODY });
                }
                self.hold(piece.len())?;
                on_piece(&piece);
                pieces.push(piece);
            }
            let mut body = Vec::with_capacity(total);
            for piece in pieces {
                body.extend_from_slice(&piece);
            }
            Ok(body)
        };
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| HttpError::TimedOut(timeout))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_limits() -> Limits {
        Limits {
            small_body: 100,
            small_pool: 1000,
            large_pool: 500,
            max_requests: 2,
            read_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn requests_past_the_cap_are_busy_until_one_ends() {
        let intake = IntakeLimits::new(small_limits());
        let first = intake.admit(Some(10)).unwrap();
        let _second = intake.admit(None).unwrap();
        assert!(matches!(intake.admit(Some(10)), Err(HttpError::Busy(_))));
        drop(first);
        assert!(intake.admit(Some(10)).is_ok());
    }

    #[test]
    fn bytes_come_from_the_pool_the_declared_length_picks_and_go_back_on_drop() {
        let intake = IntakeLimits::new(small_limits());
        let mut small = intake.admit(Some(100)).unwrap();
        small.hold(600).unwrap();
        small.hold(400).unwrap();
        assert_eq!(intake.bytes_held(), 1000);
        assert!(matches!(small.hold(1), Err(HttpError::Busy(_))));
        // Small bodies never touch the large pool.
        let mut large = intake.admit(Some(101)).unwrap();
        large.hold(500).unwrap();
        assert!(matches!(large.hold(1), Err(HttpError::Busy(_))));
        drop(small);
        drop(large);
        assert_eq!(intake.bytes_held(), 0);
    }
}
