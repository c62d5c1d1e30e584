//! The one harness every end-to-end test uses, split by concern:
//!
//! - [`config`]: the webhook secret, the API token, `webhook-samples/`, and the TOML
//!   the tests start from;
//! - [`server`]: [`Harness`], stagehand started in process over a temp dir (built by
//!   [`Harness::builder`]), and [`ServerProcess`], the real binary as a child;
//! - [`http`]: [`Client`], the one place a signed delivery is sent and a request made;
//! - [`fake_api`]: a fake forge API on 127.0.0.1 that records what it is sent;
//! - [`git`]: the git CLI, commits and the source repository the tests deploy;
//! - [`processes`]: app processes (environments that `run`) and the guard that
//!   kills them when a test ends;
//! - [`browser`]: chromedriver and a WebDriver session, for the dashboard's browser test.
//!
//! Test modules `use crate::support::*;` for everything but the browser.

pub mod browser;
mod config;
mod fake_api;
mod git;
mod http;
mod processes;
mod server;

pub use config::*;
pub use fake_api::*;
pub use git::*;
pub use http::*;
pub use processes::*;
pub use server::*;
