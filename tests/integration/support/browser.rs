//! A headless Chromium for the dashboard's browser test, driven through chromedriver
//! with the W3C WebDriver protocol spoken directly as HTTP + JSON.
//!
//! Why not a WebDriver crate: fantoccini 0.22 (thirtyfour wraps it) adds about 40
//! crates to this build (hyper 1, hyper-util, a TLS stack, the `webdriver` crate with
//! ICU segmentation data), measured with `cargo tree`; the commands the test uses fit in
//! the few methods below, over the harness's own [`request`].

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use awc::http::Method;
use base64::Engine;
use serde_json::{Value, json};

use super::config::TOKEN;
use super::http::{request, try_request};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The key a W3C element reference is stored under.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// False: skip (a developer machine without chromedriver). CI installs it, so there a
/// missing driver is a failure, not a skip.
pub fn have_chromedriver() -> bool {
    if Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{CHROMEDRIVER} is missing: .ci/run installs chromium and chromium-driver"
    );
    eprintln!(
        "SKIPPED the browser test: {CHROMEDRIVER} is missing \
         (apt-get install chromium chromium-driver)"
    );
    false
}

/// `chromedriver --port=N`, killed (with the browsers it started) when dropped.
pub struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    pub async fn start() -> Chromedriver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so that the guard also ends the Chromium it starts.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = Chromedriver {
            child: command.spawn().expect("starting chromedriver"),
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = format!("{}/status", driver.url);
            if let Ok(answer) = try_request(Method::GET, &status, &[], None).await
                && answer.json()["value"]["ready"] == true
            {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let group = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session, in a 1280×1000 window; deleted (Chromium quits) when dropped,
/// even on a panic.
pub struct Browser {
    driver: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn open(driver: &Chromedriver) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        } } });
        let answer = post_json(&format!("{}/session", driver.url), &capabilities).await;
        let session = answer.json()["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {}", answer.text))
            .to_owned();
        let browser = Browser {
            driver: driver.url.clone(),
            session,
            _profile: profile,
        };
        browser.resize(1280, 1000).await;
        browser
    }

    /// One WebDriver command on this session (a POST of `body`, else a GET); its
    /// `value`, or a panic with the error.
    async fn command(&self, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.driver, self.session);
        let answer = match body {
            Some(body) => post_json(&url, &body).await,
            None => request(Method::GET, &url, &[], None).await,
        };
        let value = answer.json()["value"].clone();
        assert!(
            (200..300).contains(&answer.status),
            "WebDriver {path}: {value}"
        );
        value
    }

    pub async fn resize(&self, width: u32, height: u32) {
        let rect = json!({"width": width, "height": height});
        self.command("/window/rect", Some(rect)).await;
    }

    pub async fn goto(&self, url: &str) {
        self.command("/url", Some(json!({ "url": url }))).await;
    }

    /// The first element matching `css`; a panic when there is none.
    async fn find(&self, css: &str) -> String {
        let query = json!({"using": "css selector", "value": css});
        let found = self.command("/element", Some(query)).await;
        found[ELEMENT].as_str().unwrap().to_owned()
    }

    pub async fn click(&self, css: &str) {
        let path = format!("/element/{}/click", self.find(css).await);
        self.command(&path, Some(json!({}))).await;
    }

    /// The rendered text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let path = format!("/element/{}/text", self.find(css).await);
        let text = self.command(&path, None).await;
        text.as_str().unwrap().to_owned()
    }

    /// Opens the dashboard at `url` and logs in through its form with the API token.
    pub async fn log_in(&self, url: &str) {
        self.goto(&format!("{url}/")).await;
        let token = self.find("input[name=token]").await;
        let path = format!("/element/{token}/value");
        self.command(&path, Some(json!({ "text": TOKEN }))).await;
        self.click("form[action='/login'] button").await;
    }

    pub async fn run(&self, script: &str) -> Value {
        let body = json!({"script": script, "args": []});
        self.command("/execute/sync", Some(body)).await
    }

    /// Polls `script` until it returns something other than null/false/"", and returns it.
    pub async fn wait_for(&self, what: &str, script: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let value = self.run(script).await;
            if !matches!(&value, Value::Null | Value::Bool(false)) && value.as_str() != Some("") {
                return value;
            }
            assert!(Instant::now() < deadline, "waited {secs}s for {what}");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Accepts the confirm dialog, waiting up to 10 s for it to appear.
    pub async fn accept_alert(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let url = format!("{}/session/{}/alert/accept", self.driver, self.session);
        loop {
            if (200..300).contains(&post_json(&url, &json!({})).await.status) {
                return;
            }
            assert!(Instant::now() < deadline, "no confirm dialog appeared");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The window as PNG bytes.
    pub async fn screenshot(&self) -> Vec<u8> {
        let encoded = self.command("/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap()
    }
}

async fn post_json(url: &str, body: &Value) -> super::http::Answer {
    let headers = [("Content-Type", "application/json".to_owned())];
    let body = serde_json::to_vec(body).unwrap();
    request(Method::POST, url, &headers, Some(body)).await
}

impl Drop for Browser {
    /// Drop cannot await, so this speaks HTTP/1.1 over a plain socket.
    fn drop(&mut self) {
        let Some(address) = self.driver.strip_prefix("http://") else {
            return;
        };
        let Ok(mut socket) = std::net::TcpStream::connect(address) else {
            return;
        };
        let _ = socket.set_read_timeout(Some(Duration::from_secs(15)));
        let request = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: {address}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n",
            self.session
        );
        if socket.write_all(request.as_bytes()).is_ok() {
            let _ = socket.read_to_end(&mut Vec::new());
        }
    }
}
