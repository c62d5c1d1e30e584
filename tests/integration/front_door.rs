//! The front door, end to end: a real stagehand deploys real repositories, the front
//! door (in process, or the real binary) answers real HTTP clients by host name.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use awc::error::WsProtocolError;
use awc::ws::{CloseCode, CloseReason, Frame, Message};
use futures_util::{SinkExt, StreamExt};
use stagehand::config::Config;

use crate::support::*;

/// An app that shows what reaches it: `/` its revision, `/headers` the headers it
/// got, `POST /echo` the body it got, `/big?n=N` N bytes, `/stream?flag=F` one chunk
/// and the second only once the file F exists, `/slow?flag=F` its revision once F
/// exists (writing F.started when it has the request). A WebSocket upgrade on any path
/// is a WebSocket echo (Python's stdlib has no WebSocket server: the handshake and
/// unfragmented frames by hand): text and binary sent back, pings answered, a close
/// answered and the connection closed; the text `revision` is answered with the revision.
const PROXY_APP_PY: &str = r#"import base64, hashlib, http.server, os, time, urllib.parse
REV = open("REVISION").read().strip()
def websocket(handler):
    key = handler.headers["Sec-WebSocket-Key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    handler.send_response(101)
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", base64.b64encode(hashlib.sha1(key.encode()).digest()).decode())
    handler.end_headers()
    handler.close_connection = True
    def read(n):
        data = handler.rfile.read(n)
        if len(data) < n:
            raise EOFError
        return data
    def send(op, data):
        n = len(data)
        head = bytes([0x80 | op]) + (bytes([n]) if n < 126 else bytes([126]) + n.to_bytes(2, "big") if n < 65536 else bytes([127]) + n.to_bytes(8, "big"))
        handler.wfile.write(head + data)
        handler.wfile.flush()
    try:
        while True:
            b0, b1 = read(2)
            op, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = int.from_bytes(read(2), "big")
            elif n == 127:
                n = int.from_bytes(read(8), "big")
            mask = read(4) if b1 & 0x80 else bytes(4)
            data = bytes(c ^ mask[i % 4] for i, c in enumerate(read(n)))
            if op == 8:
                send(8, data)
                return
            if op == 9:
                send(10, data)
            elif op == 1 and data == b"revision":
                send(1, REV.encode())
            elif op in (1, 2):
                send(op, data)
    except (EOFError, ConnectionError):
        return
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self, code, body, kind="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        if self.headers.get("Upgrade", "").lower() == "websocket":
            websocket(self)
        elif url.path == "/slow":
            flag = query["flag"][0]
            open(flag + ".started", "w").close()
            while not os.path.exists(flag):
                time.sleep(0.05)
            self.reply(200, REV.encode())
        elif url.path == "/healthz":
            self.reply(200, b"ok")
        elif url.path == "/headers":
            self.reply(200, "".join(f"{k.lower()}: {v}\n" for k, v in self.headers.items()).encode())
        elif url.path == "/big":
            n = int(query["n"][0])
            self.reply(200, bytes(i % 251 for i in range(n)), "application/octet-stream")
        elif url.path == "/stream":
            flag = query["flag"][0]
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            def chunk(data):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            chunk(b"first;")
            while not os.path.exists(flag):
                time.sleep(0.05)
            chunk(b"second")
            self.wfile.write(b"0\r\n\r\n")
            self.close_connection = True
        else:
            self.reply(200, REV.encode())
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        self.reply(200, body, "application/octet-stream")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer.daemon_threads = True
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
server.serve_forever()
"#;

/// A stagehand over `toml_rest` (after the `[apps.shop]` keys) with `files` committed
/// on `main`, its config also written to `<dir>/stagehand.toml` for the binaries.
struct DoorSetup {
    s: Harness,
    config_file: PathBuf,
}

impl DoorSetup {
    async fn start(server: &str, rest: &str, files: &[(&str, &str)]) -> DoorSetup {
        let (server, rest) = (server.to_owned(), rest.to_owned());
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let s = Harness::builder()
            .config(|dir, repo| {
                let files: Vec<(&str, &str)> = files
                    .iter()
                    .map(|(a, b)| (a.as_str(), b.as_str()))
                    .collect();
                commit(repo, "The site", &files);
                shop_toml_with(dir, repo, &server, &rest)
            })
            .start()
            .await;
        DoorSetup {
            config_file: s.config_file(),
            s,
        }
    }

    fn config(&self) -> Config {
        stagehand::config::load(&self.config_file, &env_map(&[])).unwrap()
    }

    /// The front door in process, on 127.0.0.1:0; returns its port.
    fn front_door(&self) -> (stagehand::front_door::FrontDoor, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (door, server) = stagehand::front_door::start(self.config(), listener, None).unwrap();
        actix_web::rt::spawn(server);
        (door, port)
    }
}

/// One HTTP/1.1 exchange over a fresh connection, sent as written (so paths reach the
/// front door unnormalized): (status, headers in lower case, body).
fn raw_get_blocking(port: u16, host: &str, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&answer)));
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    (status, head, answer[split + 4..].to_vec())
}

/// [`raw_get_blocking`] off the test's runtime, which also runs the in-process front door.
async fn raw_get(port: u16, host: &str, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    let (host, path, extra) = (host.to_owned(), path.to_owned(), extra.to_owned());
    actix_web::rt::task::spawn_blocking(move || raw_get_blocking(port, &host, &path, &extra))
        .await
        .unwrap()
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

const SITE: &[(&str, &str)] = &[
    ("public/index.html", "<h1>shop</h1>"),
    ("public/app.js", "console.log(1)"),
    ("public/docs/index.html", "docs"),
    ("public/.env", "SECRET=1"),
    ("public/.git-keep/x", "hidden"),
    ("secret.txt", "outside the static directory"),
];

const STATIC_ENVS: &str = r#"
[apps.shop.environments.production]
branch = "main"
static = "public"
hosts = ["shop.test", "www.shop.test"]
[apps.shop.environments.staging]
branch = "develop"
static = "public"
hosts = ["staging.shop.test"]
[apps.shop.environments.preview]
branch = "feature/*"
static = "public"
hosts = ["{environment}.preview.test"]
"#;

#[actix_web::test]
async fn static_files_by_host_with_index_types_etags_and_nothing_outside() {
    let d = DoorSetup::start("", STATIC_ENVS, SITE).await;
    // A symlink committed in the repository must not lead out of the directory.
    std::os::unix::fs::symlink("../secret.txt", d.s.repo.join("public/escape.txt")).unwrap();
    git(&d.s.repo, &["add", "-A"]);
    git(&d.s.repo, &["commit", "-qm", "link"]);
    assert_eq!(d.s.push_and_wait("main").await["status"], "succeeded");
    let link = d.s.root.join("production/current/public/escape.txt");
    assert!(std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()));
    assert!(
        std::fs::read_to_string(&link).is_ok(),
        "the link resolves outside public/"
    );
    let (_door, port) = d.front_door();

    let (status, head, body) = raw_get(port, "shop.test", "/", "").await;
    assert_eq!((status, text(&body).as_str()), (200, "<h1>shop</h1>"));
    assert!(head.contains("content-type: text/html"), "{head}");
    let (status, head, body) = raw_get(port, "WWW.Shop.Test:8080", "/app.js", "").await;
    assert_eq!((status, text(&body).as_str()), (200, "console.log(1)"));
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert_eq!(
        text(&raw_get(port, "shop.test", "/docs/", "").await.2),
        "docs"
    );

    // Conditional GET: the ETag given back answers 304 with no body.
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .to_owned();
    let (status, _, body) = raw_get(
        port,
        "shop.test",
        "/app.js",
        &format!("If-None-Match: {etag}\r\n"),
    )
    .await;
    assert_eq!((status, body.len()), (304, 0));
    let (status, _, _) =
        raw_get(port, "shop.test", "/app.js", "If-None-Match: \"other\"\r\n").await;
    assert_eq!(status, 200);

    // Nothing outside `public`, no dotfiles, no listings: all the same plain 404.
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/docs/..%2f..%2fsecret.txt",
        "/escape.txt",
        "/.env",
        "/.git-keep/x",
        "/missing.html",
        "/..%5csecret.txt",
    ] {
        let (status, _, body) = raw_get(port, "shop.test", path, "").await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(text(&body), "not found\n", "{path}");
    }

    // A known environment with nothing live yet, and an unknown host.
    assert_eq!(raw_get(port, "staging.shop.test", "/", "").await.0, 503);
    let (status, _, body) = raw_get(port, "unknown.test", "/", "").await;
    assert_eq!((status, text(&body).as_str()), (404, "not found\n"));
    let (status, _, _) = raw_get(port, "staging.preview.test", "/", "").await;
    assert_eq!(status, 404);
    d.s.stop().await;
}

#[actix_web::test]
async fn a_preview_answers_at_its_name_after_its_first_deploy_and_404_after_teardown() {
    let d = DoorSetup::start("public_url = \"https://deploy.test\"", STATIC_ENVS, SITE).await;
    let (_door, port) = d.front_door();
    let host = "preview-feature-new-cart.preview.test";
    assert_eq!(raw_get(port, host, "/", "").await.0, 404);

    git(&d.s.repo, &["checkout", "-q", "-b", "feature/New_Cart!"]);
    commit(
        &d.s.repo,
        "preview page",
        &[("public/index.html", "preview")],
    );
    assert_eq!(
        d.s.push_and_wait("feature/New_Cart!").await["status"],
        "succeeded"
    );
    let (status, _, body) = raw_get(port, host, "/", "").await;
    assert_eq!((status, text(&body).as_str()), (200, "preview"));
    // `stagehand routes` lists it with its directory.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stagehand"))
        .args(["routes", "--json", "--config"])
        .arg(&d.config_file)
        .envs(env_map(&[]))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["host"] == host)
        .unwrap_or_else(|| panic!("{rows}"));
    assert_eq!(row["environment"], "preview-feature-new-cart");
    let dir = row["target"]["dir"].as_str().unwrap();
    assert!(
        dir.ends_with("preview-feature-new-cart/current/public"),
        "{dir}"
    );

    // Its address is in the API and a link on the dashboard.
    let address = format!("https://{host}/");
    let (_, apps) = d.s.get("/api/apps").await;
    let preview = apps["apps"][0]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "preview-feature-new-cart")
        .unwrap_or_else(|| panic!("{apps}"))
        .clone();
    assert_eq!(preview["address"], address.as_str(), "{preview}");
    let (_, _, html) = d.s.get_with("/", Some(TOKEN)).await;
    assert!(html.contains(&format!("href=\"{address}\"")), "{html}");

    let (status, answer) = d.s.push(&sample("push-delete-branch.json")).await;
    assert_eq!(status, 202, "{answer}");
    let teardown = d.s.wait(&answer["deploy"]["id"], 30).await;
    assert_eq!(teardown["status"], "succeeded", "{teardown}");
    let (status, _, body) = raw_get(port, host, "/", "").await;
    assert_eq!((status, text(&body).as_str()), (404, "not found\n"));
    d.s.stop().await;
}

const RUN_ENVS: &str = r#"
[apps.shop.environments.production]
branch = "main"
run = "exec python3 app.py"
health_check = { path = "/healthz", timeout = "10s" }
hosts = ["shop.test"]
"#;

async fn run_setup(server: &str) -> DoorSetup {
    let d = DoorSetup::start(server, RUN_ENVS, &[("app.py", PROXY_APP_PY)]).await;
    let deploy = d.s.push_and_wait("main").await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    d
}

fn state(d: &DoorSetup) -> PathBuf {
    d.s.dir().join("state")
}

#[actix_web::test]
async fn proxies_to_the_live_process_with_large_bodies_both_ways_and_forwarded_headers() {
    let d = run_setup("").await;
    let (_door, port) = d.front_door();
    let url = format!("http://127.0.0.1:{port}");
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();

    let rev = git(&d.s.repo, &["rev-parse", "main"]);
    let (status, _, body) = raw_get(port, "shop.test", "/", "").await;
    assert_eq!((status, text(&body)), (200, rev));

    // 8 MB up and back down.
    let upload: Vec<u8> = (0..8_000_000u32).map(|i| (i % 253) as u8).collect();
    let mut response = client
        .post(format!("{url}/echo"))
        .insert_header(("Host", "shop.test"))
        .send_body(upload.clone())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echoed = response.body().limit(64 << 20).await.unwrap();
    assert!(echoed.as_ref() == upload.as_slice(), "echo differs");
    let mut response = client
        .get(format!("{url}/big?n=12000000"))
        .insert_header(("Host", "shop.test"))
        .send()
        .await
        .unwrap();
    let big = response.body().limit(64 << 20).await.unwrap();
    assert_eq!(big.len(), 12_000_000);
    assert!(big.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));

    // Hop-by-hop headers stop at the front door; forwarded ones are its own, since
    // this client is no trusted proxy.
    let (_, _, body) = raw_get(
        port,
        "shop.test",
        "/headers",
        "Keep-Alive: timeout=5\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Custom: kept\r\n",
    ).await;
    let seen = text(&body);
    assert!(seen.contains("x-custom: kept"), "{seen}");
    assert!(seen.contains("x-forwarded-for: 127.0.0.1\n"), "{seen}");
    assert!(seen.contains("x-forwarded-proto: http\n"), "{seen}");
    assert!(seen.contains("x-forwarded-host: shop.test\n"), "{seen}");
    assert!(seen.contains("host: shop.test\n"), "{seen}");
    assert!(!seen.contains("keep-alive"), "{seen}");
    assert!(!seen.contains("6.6.6.6"), "{seen}");
    d.s.stop().await;
}

#[actix_web::test]
async fn forwarded_headers_from_a_trusted_proxy_are_extended_not_replaced() {
    let d = run_setup("trusted_proxies = [\"127.0.0.1\"]").await;
    let (_door, port) = d.front_door();
    let (_, _, body) = raw_get(
        port,
        "shop.test",
        "/headers",
        "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example.com\r\n",
    ).await;
    let seen = text(&body);
    assert!(
        seen.contains("x-forwarded-for: 203.0.113.9, 127.0.0.1\n"),
        "{seen}"
    );
    assert!(seen.contains("x-forwarded-proto: https\n"), "{seen}");
    assert!(
        seen.contains("x-forwarded-host: shop.example.com\n"),
        "{seen}"
    );
    d.s.stop().await;
}

#[actix_web::test]
async fn a_streamed_response_reaches_the_client_before_the_app_has_finished_it() {
    let d = run_setup("").await;
    let (_door, port) = d.front_door();
    let flag = d.s.dir().join("go");
    let mut response = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish()
        .get(format!(
            "http://127.0.0.1:{port}/stream?flag={}",
            flag.display()
        ))
        .insert_header(("Host", "shop.test"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The app holds the second chunk until the flag exists: the first one can only
    // have arrived if the front door passed it on without waiting for the end.
    let first = response.next().await.unwrap().unwrap();
    assert_eq!(&first[..], b"first;");
    assert!(!flag.exists());
    std::fs::write(&flag, "").unwrap();
    let mut rest = Vec::new();
    while let Some(chunk) = response.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(text(&rest), "second");
    d.s.stop().await;
}

/// The real `stagehand front-door` binary; killed on drop.
struct Door(std::process::Child);

impl Drop for Door {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_front_door(config: &Path) -> (Door, u16) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stagehand"))
        .args(["front-door", "--config"])
        .arg(config)
        .envs(env_map(&[]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let door = Door(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    (door, port)
}

#[actix_web::test]
async fn the_front_door_binary_keeps_serving_while_serve_is_stopped() {
    let d = run_setup("front_door = \"127.0.0.1:0\"").await;
    let (_door, port) = spawn_front_door(&d.config_file);
    let rev = git(&d.s.repo, &["rev-parse", "main"]);
    assert_eq!(text(&raw_get(port, "shop.test", "/", "").await.2), rev);
    let (app_port, _, _) = route_in(&state(&d), "production").unwrap();

    // The temp dir (and the guard of app processes) stays until the end of the test:
    // the app still runs from it.
    let s = d.s.stop().await;
    // stagehand is gone; its app process and the front door are not.
    for _ in 0..20 {
        let (status, _, body) = raw_get(port, "shop.test", "/", "").await;
        assert_eq!((status, text(&body)), (200, rev.clone()));
    }
    assert_eq!(
        route_in(&s.dir().join("state"), "production").unwrap().0,
        app_port
    );
    assert_eq!(raw_get(port, "nobody.test", "/", "").await.0, 404);
    drop(s);
}

/// The front door's unit must not be tied to stagehand.service: `PartOf`, `BindsTo` or
/// `Requires` would stop or restart it with `serve`, dropping traffic on every upgrade.
#[test]
fn the_front_door_unit_runs_apart_from_serve_and_drains_before_systemd_kills_it() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/stagehand-front-door.service"
    ))
    .unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/stagehand front-door --config"),
        "{unit}"
    );
    for tie in ["PartOf=", "BindsTo=", "Requires=", "Requisite="] {
        assert!(!unit.lines().any(|l| l.starts_with(tie)), "{tie} in {unit}");
    }
    let stop_secs: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no TimeoutStopSec in {unit}"));
    // The front door drains for up to 30 s on SIGTERM (front_door::DRAIN).
    assert!(stop_secs > 30, "{stop_secs}");
    if let Ok(probe) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        && probe.status.success()
    {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stagehand-front-door.service");
        std::fs::write(
            &path,
            unit.replace("/usr/local/bin/stagehand", env!("CARGO_BIN_EXE_stagehand")),
        )
        .unwrap();
        let out = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("stagehand-front-door.service:"),
            "systemd-analyze: {stderr}"
        );
    }
}

/// A WebSocket through the front door to `host`'s app, at `/socket`.
async fn ws_connect(
    port: u16,
    host: &str,
) -> impl futures_util::Stream<Item = Result<Frame, WsProtocolError>>
+ futures_util::Sink<Message, Error = WsProtocolError>
+ Unpin {
    let (response, socket) = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
        .ws(format!("http://127.0.0.1:{port}/socket"))
        .set_header("Host", host)
        .max_frame_size(1 << 20)
        .connect()
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    socket
}

/// Sends `message` and returns the next frame that comes back.
async fn exchange<S>(socket: &mut S, message: Message) -> Frame
where
    S: futures_util::Stream<Item = Result<Frame, WsProtocolError>>
        + futures_util::Sink<Message, Error = WsProtocolError>
        + Unpin,
{
    socket.send(message).await.unwrap();
    socket.next().await.unwrap().unwrap()
}

async fn revision_over<S>(socket: &mut S) -> String
where
    S: futures_util::Stream<Item = Result<Frame, WsProtocolError>>
        + futures_util::Sink<Message, Error = WsProtocolError>
        + Unpin,
{
    match exchange(socket, Message::Text("revision".into())).await {
        Frame::Text(rev) => text(&rev),
        other => panic!("{other:?}"),
    }
}

#[actix_web::test]
async fn a_websocket_echo_through_the_front_door_text_binary_ping_and_a_clean_close() {
    let d = run_setup("").await;
    let (_door, port) = d.front_door();
    let rev = git(&d.s.repo, &["rev-parse", "main"]);
    let mut socket = ws_connect(port, "shop.test").await;
    assert_eq!(
        exchange(&mut socket, Message::Text("hello".into())).await,
        Frame::Text("hello".into())
    );
    let small = vec![0u8, 1, 2, 255];
    assert_eq!(
        exchange(&mut socket, Message::Binary(small.clone().into())).await,
        Frame::Binary(small.into())
    );
    // Past 65,535 bytes the frame length takes 8 bytes: passed through as it is.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        exchange(&mut socket, Message::Binary(big.clone().into())).await,
        Frame::Binary(big.into())
    );
    assert_eq!(
        exchange(&mut socket, Message::Ping("are you there".into())).await,
        Frame::Pong("are you there".into())
    );
    assert_eq!(revision_over(&mut socket).await, rev);
    // A clean close: the app's close frame comes back, then the connection ends.
    let normal = Some(CloseReason::from(CloseCode::Normal));
    assert_eq!(
        exchange(&mut socket, Message::Close(normal.clone())).await,
        Frame::Close(normal)
    );
    assert!(socket.next().await.is_none());

    // An upgrade for an unknown host is the same plain 404; a broken handshake is a 400.
    let upgrade = "Upgrade: websocket\r\n";
    assert_eq!(
        raw_get(port, "nobody.test", "/socket", upgrade).await.0,
        404
    );
    assert_eq!(raw_get(port, "shop.test", "/socket", upgrade).await.0, 400);
    d.s.stop().await;
}

/// Polls `done` every 50 ms, up to a minute (a guard against hanging, not a measure).
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..1200 {
        if done().await {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("still not {what} after a minute");
}

#[actix_web::test]
async fn a_websocket_keeps_working_through_a_deploy_until_the_old_process_is_retired() {
    // The deploy holds in after_release (after the switch, before the retire) while
    // <root>/production/hold exists: the test looks at both processes meanwhile.
    let rest =
        format!("{RUN_ENVS}after_release = [\"while [ -f ../../hold ]; do sleep 0.05; done\"]\n");
    let d = DoorSetup::start("", &rest, &[("app.py", PROXY_APP_PY)]).await;
    assert_eq!(d.s.push_and_wait("main").await["status"], "succeeded");
    let (_door, port) = d.front_door();
    let first = git(&d.s.repo, &["rev-parse", "main"]);
    let mut old = ws_connect(port, "shop.test").await;
    assert_eq!(revision_over(&mut old).await, first);

    let hold = d.s.root.join("production/hold");
    std::fs::write(&hold, "").unwrap();
    let second = commit(&d.s.repo, "second", &[("v.txt", "2")]);
    let (status, answer) = d.s.push(&push_body("refs/heads/main", &second)).await;
    assert_eq!(status, 202, "{answer}");
    // Switched: a new socket reaches the new process...
    eventually("switched", async || {
        let mut socket = ws_connect(port, "shop.test").await;
        revision_over(&mut socket).await == second
    })
    .await;
    // ...while the one opened before still talks to the old one.
    assert_eq!(revision_over(&mut old).await, first);
    assert_eq!(
        exchange(&mut old, Message::Text("still here".into())).await,
        Frame::Text("still here".into())
    );

    std::fs::remove_file(&hold).unwrap();
    let deploy = d.s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    // Retired: the old process is gone, and its tunnel ends with it.
    let ended = actix_web::rt::time::timeout(Duration::from_secs(60), old.next()).await;
    match ended {
        Ok(None | Some(Err(_)) | Some(Ok(Frame::Close(_)))) => {}
        Ok(Some(Ok(other))) => panic!("{other:?}"),
        Err(_) => panic!("the old process's socket is still open"),
    }
    let mut new = ws_connect(port, "shop.test").await;
    assert_eq!(revision_over(&mut new).await, second);
    d.s.stop().await;
}

/// `GET /slow?flag=<flag>` through the front door on its own thread; returns once the
/// app has the request.
async fn slow_request(
    port: u16,
    flag: &Path,
) -> actix_web::rt::task::JoinHandle<(u16, String, Vec<u8>)> {
    let path = format!("/slow?flag={}", flag.display());
    let slow =
        actix_web::rt::task::spawn_blocking(move || raw_get_blocking(port, "shop.test", &path, ""));
    let started = flag.with_extension("started");
    eventually("started", async || started.exists()).await;
    slow
}

#[actix_web::test]
async fn a_slow_request_started_before_a_deploy_finishes_with_200_after_the_switch() {
    let d = run_setup("").await;
    let (_door, port) = d.front_door();
    let first = git(&d.s.repo, &["rev-parse", "main"]);
    let flag = d.s.dir().join("go");
    let slow = slow_request(port, &flag).await;

    let second = commit(&d.s.repo, "second", &[("v.txt", "2")]);
    let (status, answer) = d.s.push(&push_body("refs/heads/main", &second)).await;
    assert_eq!(status, 202, "{answer}");
    let id = &answer["deploy"]["id"];
    // The retire waits for the request the front door still has in flight to the old
    // process (the route has switched: new requests reach the new one).
    eventually("draining", async || {
        d.s.log(id).await.contains("1 request(s) in flight")
    })
    .await;
    // The drain can say so before this front door has read the new routes.json (it
    // polls every 200 ms): new requests reach the new process soon after, while the
    // slow one is still held on the old.
    eventually("new requests on the new process", async || {
        let (status, _, body) = raw_get(port, "shop.test", "/", "").await;
        (status, text(&body)) == (200, second.clone())
    })
    .await;
    assert_eq!(
        d.s.get(&format!("/api/deploys/{}", id.as_str().unwrap()))
            .await
            .1["status"],
        "running"
    );

    std::fs::write(&flag, "").unwrap();
    let (status, _, body) = slow.await.unwrap();
    assert_eq!((status, text(&body)), (200, first));
    let deploy = d.s.wait(id, 60).await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    let log = d.s.log(id).await;
    assert!(log.contains("drained: nothing in flight"), "{log}");
    d.s.stop().await;
}

#[actix_web::test]
async fn a_request_still_in_flight_at_drain_timeout_is_cut_and_the_deploy_goes_on() {
    let rest = RUN_ENVS.replace("hosts =", "drain_timeout = \"1s\"\nhosts =");
    let d = DoorSetup::start("", &rest, &[("app.py", PROXY_APP_PY)]).await;
    assert_eq!(d.s.push_and_wait("main").await["status"], "succeeded");
    let (_door, port) = d.front_door();
    let flag = d.s.dir().join("never");
    let slow = slow_request(port, &flag).await;

    commit(&d.s.repo, "second", &[("v.txt", "2")]);
    let deploy = d.s.push_and_wait("main").await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    let log = d.s.log(&deploy["id"]).await;
    assert!(
        log.contains("drain_timeout 1.0s passed with 1 request(s) still in flight"),
        "{log}"
    );
    // The old process stopped under it: the front door answers what it can.
    let (status, _, _) = slow.await.unwrap();
    assert_eq!(status, 502);
    d.s.stop().await;
}
