//! The `stagehand` binary: parses the command line and hands off to the library.
//! Errors end here, printed with their chain.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use stagehand::cli::{self, Output};
use stagehand::client::Client;
use stagehand::config::{self, Config};

#[derive(Parser)]
#[command(
    name = "stagehand",
    version,
    about = "Push-to-deploy for multi-stage environments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as `text` or `json` (one object per line, for log shippers).
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

/// How client commands find the server.
#[derive(Args, Clone)]
struct Remote {
    /// The server's URL (default: http:// + the config's server.listen).
    #[arg(long, global = true)]
    server: Option<String>,
    /// The config file, for the default server address.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Print the API's JSON instead of tables and log lines.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the webhook server and the deploy runner.
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the front door: route requests by host name to each environment's app
    /// process or static files (`[server] front_door`). A process of its own, so it
    /// keeps serving while `serve` restarts.
    FrontDoor {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the front door's table: host → environment → port or directory.
    Routes {
        #[arg(long)]
        config: Option<PathBuf>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Validate the config and print the branch → environment table.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The whole thing on a throwaway repository, no setup.
    Demo {
        /// Exit when the demo deploys are done: 0 when all succeeded.
        #[arg(long)]
        once: bool,
        /// Keep the demo workspace (repository, releases, database) afterwards.
        #[arg(long)]
        keep: bool,
        /// Address to serve on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// Environments, live releases and last deploys.
    Status {
        app: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Deploy a branch, tag or sha (default: the environment's branch head).
    Deploy {
        app: String,
        env: String,
        #[arg(long = "ref")]
        git_ref: Option<String>,
        /// Stream the log; exit non-zero unless the deploy succeeds.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Switch back to the previous (or the given) release.
    Rollback {
        app: String,
        env: String,
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Deploy the commit live in FROM into TO.
    Promote {
        app: String,
        from: String,
        to: String,
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Copy runtime data (shared directories) from FROM into TO, then run the sync commands.
    Sync {
        app: String,
        from: String,
        to: String,
        /// Allow a protected target.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// The releases of an environment.
    Releases {
        app: String,
        env: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Start the live release's process again, blue/green (environments with `run`).
    Restart {
        app: String,
        env: String,
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Start a stopped environment's process (the same blue/green path as restart).
    Start {
        app: String,
        env: String,
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Pin a preview: it never expires (`expire_after`) until unpinned.
    Pin {
        app: String,
        env: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Unpin a preview: it expires again after `expire_after` without a deploy.
    Unpin {
        app: String,
        env: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stop an environment's process; it stays stopped until `start` or a deploy.
    Stop {
        app: String,
        env: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// A deploy's log, by id or APP/ENV (the latest there); `--app`: APP/ENV's app log.
    Logs {
        target: String,
        #[arg(long)]
        follow: bool,
        /// The app process's output (stdout and stderr) instead of a deploy's log.
        #[arg(long)]
        app: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Webhook tools.
    Hook {
        #[command(subcommand)]
        command: HookCommand,
    },
    /// Print a strong random webhook secret.
    Secret,
    /// Write a commented stagehand.toml to start from.
    Init {
        /// Where to write it.
        #[arg(long, default_value = "stagehand.toml")]
        output: PathBuf,
        /// The repository URL or path.
        #[arg(long, default_value = "git@github.com:acme/shop.git")]
        repo: String,
        /// owner/name on GitHub.
        #[arg(long, default_value = "acme/shop")]
        github: String,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum HookCommand {
    /// Send a signed test delivery to the server.
    Send {
        app: String,
        #[arg(long, default_value = "push")]
        event: String,
        /// Push this branch's current head.
        #[arg(long)]
        branch: Option<String>,
        /// A webhook-samples/ JSON file to send instead of the built-in one.
        #[arg(long)]
        sample: Option<PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs what it does; the other commands print their own output and
    // only want warnings from the library underneath.
    let level = match cli.command {
        Command::Serve { .. } | Command::FrontDoor { .. } => tracing::Level::INFO,
        _ => tracing::Level::WARN,
    };
    let logs = tracing_subscriber::fmt()
        .with_target(false)
        .with_max_level(level)
        .with_writer(std::io::stderr);
    if cli.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    let env: HashMap<String, String> = std::env::vars().collect();
    match run(cli.command, env) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, env: HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let system = || actix_web::rt::System::new();
    match command {
        Command::Serve { config } => {
            let config = load(config, &env)?;
            system().block_on(stagehand::server::serve(config, env))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::FrontDoor { config } => {
            let config = load(config, &env)?;
            system().block_on(stagehand::front_door::serve(config, env))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Routes { config, json } => {
            let config = load(config, &env)?;
            let rows = stagehand::front_door::table::Snapshot::read(config)?.rows();
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", stagehand::front_door::table::describe(&rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config } => {
            let config = load(config, &env)?;
            print!("{}", config.describe());
            if config.server.api_token.is_none() {
                println!(
                    "note: {} is not set: the API and dashboard will refuse every request",
                    config.server.api_token_env
                );
            }
            println!("{}: ok", config.file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { once, keep, listen } => {
            let options = stagehand::demo::DemoOptions { once, keep, listen };
            system().block_on(stagehand::demo::run(options, env))
        }
        Command::Secret => {
            println!("{}", stagehand::hook_send::random_hex(32));
            Ok(ExitCode::SUCCESS)
        }
        Command::Init {
            output,
            repo,
            github,
            force,
        } => init(&output, &repo, &github, force),
        Command::Hook {
            command:
                HookCommand::Send {
                    app,
                    event,
                    branch,
                    sample,
                    remote,
                },
        } => {
            let config = load(remote.config.clone(), &env)?;
            let server = server_url(&remote, &env);
            let app_config = stagehand::core::ids::AppName::parse(&app)
                .ok()
                .and_then(|name| config.apps.get(&name))
                .with_context(|| format!("no app {app:?} in {}", config.file.display()))?;
            let sample_text = match &sample {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None if event == "ping" => stagehand::hook_send::PING_SAMPLE.to_owned(),
                None => stagehand::hook_send::PUSH_SAMPLE.to_owned(),
            };
            let delivery =
                stagehand::hook_send::build(app_config, &event, &sample_text, branch.as_deref())?;
            let (status, answer) =
                system().block_on(stagehand::hook_send::send(&server, app_config, &delivery))?;
            println!("{status} {answer:#}");
            Ok(if status < 300 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        client_command => {
            let remote = match &client_command {
                Command::Status { remote, .. }
                | Command::Deploy { remote, .. }
                | Command::Rollback { remote, .. }
                | Command::Promote { remote, .. }
                | Command::Sync { remote, .. }
                | Command::Releases { remote, .. }
                | Command::Restart { remote, .. }
                | Command::Start { remote, .. }
                | Command::Stop { remote, .. }
                | Command::Pin { remote, .. }
                | Command::Unpin { remote, .. }
                | Command::Logs { remote, .. } => remote.clone(),
                _ => unreachable!("handled above"),
            };
            let client = Client::new(
                &server_url(&remote, &env),
                env.get("STAGEHAND_API_TOKEN").cloned(),
            );
            let out = Output::new(remote.json);
            system().block_on(client_run(client_command, client, out))
        }
    }
}

async fn client_run(command: Command, client: Client, out: Output) -> anyhow::Result<ExitCode> {
    let code = match command {
        Command::Status { app, .. } => cli::status(&client, app.as_deref(), out).await?,
        Command::Deploy {
            app,
            env,
            git_ref,
            follow,
            ..
        } => {
            let answer = cli::deploy(&client, &app, &env, git_ref.as_deref()).await?;
            cli::created(&client, answer, follow, out).await?
        }
        Command::Rollback {
            app,
            env,
            to,
            follow,
            ..
        } => {
            let answer = cli::rollback(&client, &app, &env, to.as_deref()).await?;
            cli::created(&client, answer, follow, out).await?
        }
        Command::Promote {
            app,
            from,
            to,
            follow,
            ..
        } => {
            let answer = cli::promote(&client, &app, &from, &to).await?;
            cli::created(&client, answer, follow, out).await?
        }
        Command::Sync {
            app,
            from,
            to,
            force,
            follow,
            ..
        } => {
            let answer = cli::sync(&client, &app, &from, &to, force).await?;
            cli::created(&client, answer, follow, out).await?
        }
        Command::Releases { app, env, .. } => cli::releases(&client, &app, &env, out).await?,
        Command::Logs {
            target,
            follow,
            app: true,
            ..
        } => stagehand::app_cli::app_log(&client, &target, follow).await?,
        Command::Logs { target, follow, .. } => cli::logs(&client, &target, follow, out).await?,
        Command::Restart {
            app, env, follow, ..
        } => {
            let answer = stagehand::app_cli::restart(&client, "restart", &app, &env).await?;
            cli::created(&client, answer, follow, out).await?
        }
        Command::Start {
            app, env, follow, ..
        } => {
            let answer = stagehand::app_cli::restart(&client, "start", &app, &env).await?;
            cli::created(&client, answer, follow, out).await?
        }
        Command::Stop { app, env, .. } => {
            stagehand::app_cli::stop(&client, &app, &env, out).await?
        }
        Command::Pin { app, env, .. } => {
            let answer = client
                .post(
                    &format!("/api/apps/{app}/environments/{env}/pin"),
                    &serde_json::json!({}),
                )
                .await?;
            if out.json {
                println!("{answer:#}");
            } else {
                println!("{app}/{env}: pinned (it does not expire)");
            }
            ExitCode::SUCCESS
        }
        Command::Unpin { app, env, .. } => {
            let answer = client
                .post(
                    &format!("/api/apps/{app}/environments/{env}/unpin"),
                    &serde_json::json!({}),
                )
                .await?;
            if out.json {
                println!("{answer:#}");
            } else {
                println!("{app}/{env}: unpinned (it expires after expire_after without a deploy)");
            }
            ExitCode::SUCCESS
        }
        _ => ExitCode::FAILURE,
    };
    Ok(code)
}

fn load(path: Option<PathBuf>, env: &HashMap<String, String>) -> anyhow::Result<Config> {
    let path = path.unwrap_or_else(|| config::default_path(env));
    Ok(config::load(&path, env)?)
}

/// `--server`, else `$STAGEHAND_SERVER`, else the config's `server.listen`, else :9000.
fn server_url(remote: &Remote, env: &HashMap<String, String>) -> String {
    if let Some(server) = remote
        .server
        .clone()
        .or_else(|| env.get("STAGEHAND_SERVER").cloned())
    {
        return server;
    }
    let path = remote
        .config
        .clone()
        .unwrap_or_else(|| config::default_path(env));
    let listen = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| config::listen_address(&text))
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    format!("http://{listen}")
}

fn init(output: &Path, repo: &str, github: &str, force: bool) -> anyhow::Result<ExitCode> {
    if output.exists() && !force {
        anyhow::bail!("{} exists: pass --force to overwrite it", output.display());
    }
    let app = github
        .rsplit('/')
        .next()
        .unwrap_or("app")
        .to_ascii_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
    let secret_var = format!(
        "{}_WEBHOOK_SECRET",
        app.to_ascii_uppercase().replace('-', "_")
    );
    let text = stagehand::config::starter(&app, repo, github, &secret_var);
    std::fs::write(output, text).with_context(|| format!("writing {}", output.display()))?;
    println!("wrote {}", output.display());
    println!(
        "next: export {secret_var}=$(stagehand secret); stagehand check --config {}",
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}
