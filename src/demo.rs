//! `stagehand demo`: the whole thing on a throwaway app, with no setup. It makes a
//! workspace with a small git repository (`main`, `develop`, `feature/hello`), a config
//! mapping them to production, staging and a preview, starts the real server on
//! 127.0.0.1, sends signed deliveries built from the carried webhook samples, and shows
//! the deploy logs live as they are written. Staging runs a tiny Python web server
//! (`serve.py`, when `python3` is installed): an environment with `run`, started,
//! health-checked and switched to like a real app, whose address the demo prints.

use crate::outln;
use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use git2::{Repository, Signature};

use crate::client::Client;
use crate::config::Config;
use crate::hook_send;

pub struct DemoOptions {
    /// Exit when the deploys are done (0 when all succeeded) instead of serving on.
    pub once: bool,
    /// Keep the workspace afterwards.
    pub keep: bool,
    pub listen: String,
}

const BUILD_SH: &str = r#"#!/bin/sh
set -e
echo "building $STAGEHAND_APP for $STAGEHAND_ENVIRONMENT (APP_ENV=$APP_ENV)"
echo "commit $STAGEHAND_COMMIT from ${STAGEHAND_BRANCH:-a tag}"
sleep 1
mkdir -p public
sed "s/{{ENV}}/$APP_ENV/" index.html > public/index.html
echo "wrote public/index.html ($(wc -c < public/index.html) bytes)"
"#;

/// Staging's app process: serves the built page and a health check on `$PORT`.
const SERVE_PY: &str = r#"import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            body = b"ok\n"
        else:
            with open("public/index.html", "rb") as f:
                body = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, format, *args):
        print(self.address_string(), format % args, flush=True)
port = int(os.environ["PORT"])
print(f"serving release {os.environ['STAGEHAND_RELEASE']} on 127.0.0.1:{port}", flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"#;

pub async fn run(
    options: DemoOptions,
    process_env: HashMap<String, String>,
) -> anyhow::Result<ExitCode> {
    let workspace =
        std::env::temp_dir().join(format!("stagehand-demo-{}", hook_send::random_hex(4)?));
    std::fs::create_dir_all(&workspace)
        .with_context(|| format!("creating {}", workspace.display()))?;
    let result = demo(&workspace, &options, process_env).await;
    if !options.keep {
        let _ = crate::pipeline::releases::remove_tree(&workspace);
    } else {
        outln!("workspace kept: {}", workspace.display());
    }
    result
}

async fn demo(
    workspace: &Path,
    options: &DemoOptions,
    process_env: HashMap<String, String>,
) -> anyhow::Result<ExitCode> {
    let repo = workspace.join("repo");
    make_repository(&repo).context("creating the demo repository")?;
    let secret = hook_send::random_hex(20)?;
    let token = hook_send::random_hex(16)?;
    let has_python = process_env
        .get("PATH")
        .is_some_and(|path| std::env::split_paths(path).any(|dir| dir.join("python3").is_file()));
    let toml = config_text(workspace, &repo, has_python);
    let config_path = workspace.join("stagehand.toml");
    std::fs::write(&config_path, &toml)?;
    let mut env = process_env;
    env.insert("DEMO_WEBHOOK_SECRET".into(), secret);
    env.insert("STAGEHAND_API_TOKEN".into(), token.clone());
    let config = Config::from_sources(&config_path, &toml, &env, &|p| std::fs::read_to_string(p))?;
    let app = config
        .apps
        .values()
        .next()
        .cloned()
        .context("the demo config has an app")?;
    let listener = TcpListener::bind(&options.listen)
        .with_context(|| format!("binding {}", options.listen))?;
    // The demo's front door lives in its process: a real one is `stagehand front-door`.
    let door_listener = TcpListener::bind("127.0.0.1:0").context("binding the front door")?;
    let door_port = door_listener.local_addr()?.port();
    let (door, door_server) = crate::front_door::start(config.clone(), door_listener, None)?;
    actix_web::rt::spawn(door_server);
    let running =
        crate::server::start(config, listener, env, crate::server::system_clock()).await?;
    let url = running.url.clone();
    outln!("stagehand demo: a throwaway app in {}", workspace.display());
    outln!(
        "  repository  {} (branches main, develop, feature/hello)",
        repo.display()
    );
    outln!("  config      {}", config_path.display());
    outln!("  server      {url}\n");
    let client = Client::new(&url, Some(token.clone()));

    // Staging first: the preview is seeded from staging's data.
    let mut outcomes = Vec::new();
    outcomes.push(push_and_follow(&client, &url, &app, &["develop"]).await?);
    outcomes.push(push_and_follow(&client, &url, &app, &["feature/hello", "main"]).await?);
    let outcomes: Vec<(String, String, String)> = outcomes.into_iter().flatten().collect();

    outln!("\nsummary");
    for (env, status, id) in &outcomes {
        outln!("  {env:<26} {status:<10} {url}/api/deploys/{id}/log");
    }
    let all_ok = outcomes.iter().all(|(_, status, _)| status == "succeeded");
    for (env, _, _) in &outcomes {
        let index = app.root.join(env).join("current/public/index.html");
        if let Ok(html) = std::fs::read_to_string(&index) {
            outln!(
                "  {} → {}",
                index.display(),
                html.lines().next().unwrap_or_default()
            );
        }
    }
    println!("\naddresses (the front door on 127.0.0.1:{door_port}; *.localhost is 127.0.0.1)");
    for (env, _, _) in &outcomes {
        let host = format!("{env}.localhost");
        let address = format!("127.0.0.1:{door_port}");
        let answer = {
            let host = host.clone();
            tokio::task::spawn_blocking(move || first_line_of(&address, &host))
                .await
                .unwrap_or_else(|e| format!("({e})"))
        };
        println!("  http://{host}:{door_port}/  answers: {answer}");
    }
    let staging = crate::core::ids::EnvironmentName::parse("staging")?;
    let supervisor = running.state.supervisor.clone();
    if let Some(supervisor) = &supervisor
        && let Ok(Some(process)) = supervisor.live(&app.name, &staging).await
    {
        let address = format!("127.0.0.1:{}", process.port);
        let answer = tokio::task::spawn_blocking(move || first_line_of(&address, "127.0.0.1"))
            .await
            .unwrap_or_else(|e| format!("({e})"));
        outln!(
            "\nstaging runs an app process (serve.py, pid {}): http://127.0.0.1:{}/",
            process.pid.unwrap_or(0),
            process.port
        );
        outln!("  it answers: {answer}");
        outln!("  its output: stagehand logs demo/staging --app --server {url}");
    } else if !has_python {
        outln!("\n(python3 is not installed: staging runs no app process in this demo)");
    }
    outln!("\ndashboard  {url}/   (log in with the token)");
    outln!("API token  {token}");
    outln!("try        STAGEHAND_API_TOKEN={token} stagehand status --server {url}");
    if !options.once {
        outln!(
            "\nstagehand keeps running; push more with `stagehand hook send` or stop with Ctrl-C."
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    // A real app outlives stagehand; the demo's must not outlive the demo's workspace.
    if let Some(supervisor) = &supervisor
        && let Ok(stopped) = supervisor.stop_environment(&app.name, &staging).await
        && stopped > 0
    {
        println!("stopped staging's app process");
    }
    door.stop().await;
    running.stop().await?;
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Pushes each branch (signed deliveries), then follows all their logs at once.
/// Returns (environment, final status, deploy id) per push.
async fn push_and_follow(
    client: &Client,
    url: &str,
    app: &crate::config::AppConfig,
    branches: &[&str],
) -> anyhow::Result<Vec<(String, String, String)>> {
    let mut followers = Vec::new();
    for branch in branches {
        let delivery = hook_send::build(
            app,
            "push",
            hook_send::PUSH_SAMPLE,
            &hook_send::PushEdit::branch(branch),
        )?;
        let (status, answer) = hook_send::send(url, app, &delivery).await?;
        anyhow::ensure!(
            status == 202,
            "push of {branch} answered {status}: {answer}"
        );
        let id = answer["deploy"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let env = answer["deploy"]["environment"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        outln!("push {branch:<14} → deploy {id} to {env}");
        let client = client.clone();
        followers.push(actix_web::rt::spawn(async move {
            let prefix = format!("[{env}]");
            let followed = client
                .follow_log(&id, |line| outln!("{prefix:<28} {line}"))
                .await;
            let status = match followed {
                Ok(()) => client
                    .get(&format!("/api/deploys/{id}"))
                    .await
                    .map(|d| d["status"].as_str().unwrap_or("unknown").to_owned())
                    .unwrap_or_else(|e| format!("unknown ({e})")),
                Err(e) => format!("unknown ({e})"),
            };
            (env, status, id)
        }));
    }
    let mut outcomes = Vec::new();
    for follower in followers {
        outcomes.push(follower.await.context("following a deploy")?);
    }
    Ok(outcomes)
}

/// `GET /` on `address` for `host`: the first line of the body, as a visitor would see it.
fn first_line_of(address: &str, host: &str) -> String {
    use std::io::{Read, Write};
    let fetch = || -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect(address)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        write!(
            stream,
            "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.lines().next().unwrap_or_default().to_owned())
            .unwrap_or_default())
    };
    fetch().unwrap_or_else(|e| format!("(no answer: {e})"))
}

fn config_text(workspace: &Path, repo: &Path, run_staging: bool) -> String {
    let run = if run_staging {
        "run = \"exec python3 serve.py\"\nstop_timeout = \"5s\"\nhealth_check = { path = \"/healthz\", timeout = \"20s\" }\n"
    } else {
        ""
    };
    format!(
        r#"# Written by `stagehand demo`: production, staging and previews for one app.
[server]
state_dir = "{state}"
# The demo shows deliveries at work; reconciliation (on by default) would deploy
# the same branches at start, beside them.
reconcile_interval = "0"

[apps.demo]
repo = "{repo}"
github = "stagehand/demo"
secret_env = "DEMO_WEBHOOK_SECRET"
root = "{root}"
shared = ["storage/"]
build = ["sh build.sh"]
keep_releases = 3
step_timeout = "2m"

[apps.demo.environments.production]
branch = "main"
protected = true
env = {{ APP_ENV = "production" }}
static = "public"
hosts = ["production.localhost"]

[apps.demo.environments.staging]
branch = "develop"
env = {{ APP_ENV = "staging" }}
static = "public"
hosts = ["staging.localhost"]
{run}
[apps.demo.environments.preview]
branch = "feature/*"
seed_from = "staging"
env = {{ APP_ENV = "preview" }}
static = "public"
hosts = ["{{environment}}.localhost"]
"#,
        state = workspace.join("state").display(),
        repo = repo.display(),
        root = workspace.join("srv").display(),
    )
}

/// `main` ← `develop` ← `feature/hello`, each one commit ahead.
fn make_repository(dir: &Path) -> anyhow::Result<()> {
    let repo = Repository::init(dir)?;
    let sig = Signature::now("stagehand demo", "demo@stagehand.invalid")?;
    let files: [(&str, &str); 4] = [
        ("index.html", "<h1>Hello from {{ENV}}</h1>\n"),
        ("build.sh", BUILD_SH),
        ("README.md", "A demo app deployed by stagehand.\n"),
        ("serve.py", SERVE_PY),
    ];
    for (path, content) in files {
        std::fs::write(dir.join(path), content)?;
    }
    let main = commit(
        &repo,
        &sig,
        "refs/heads/main",
        None,
        "First version",
        &["index.html", "build.sh", "README.md", "serve.py"],
    )?;
    std::fs::write(
        dir.join("index.html"),
        "<h1>Hello from {{ENV}}</h1>\n<p>Now with a subtitle.</p>\n",
    )?;
    let develop = commit(
        &repo,
        &sig,
        "refs/heads/develop",
        Some(main),
        "Add a subtitle",
        &["index.html"],
    )?;
    std::fs::write(dir.join("CHANGELOG.md"), "- hello feature\n")?;
    commit(
        &repo,
        &sig,
        "refs/heads/feature/hello",
        Some(develop),
        "Start the hello feature",
        &["CHANGELOG.md"],
    )?;
    repo.set_head("refs/heads/main")?;
    Ok(())
}

fn commit(
    repo: &Repository,
    sig: &Signature<'_>,
    branch: &str,
    parent: Option<git2::Oid>,
    message: &str,
    paths: &[&str],
) -> anyhow::Result<git2::Oid> {
    let mut index = repo.index()?;
    for path in paths {
        index.add_path(Path::new(path))?;
    }
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let parents: Vec<git2::Commit<'_>> = parent
        .map(|p| repo.find_commit(p))
        .transpose()?
        .into_iter()
        .collect();
    let parent_refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
    let oid = repo.commit(None, sig, sig, message, &tree, &parent_refs)?;
    repo.reference(branch, oid, true, message)?;
    Ok(oid)
}
