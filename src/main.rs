//! The `stagehand` binary: parses the command line and hands off to the library.
//! Errors end here, printed with their chain.
//!
//! One concept: the command line, every command's arguments (clap) and the one arm per
//! command that hands it to the library; over 600 lines because there are 22 commands
//! (and `hook send`).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use stagehand::cli::{self, Output};
use stagehand::client::Client;
use stagehand::config::{self, Config};
use stagehand::outln;

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
        /// The config file (default: $STAGEHAND_CONFIG, else ./stagehand.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the front door: route requests by host name to each environment's app
    /// process or static files (`[server] front_door`). A process of its own, so it
    /// keeps serving while `serve` restarts.
    FrontDoor {
        /// The config file (default: $STAGEHAND_CONFIG, else ./stagehand.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the front door's table: host → environment → port or directory.
    Routes {
        /// The config file (default: $STAGEHAND_CONFIG, else ./stagehand.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Validate the config and print the branch → environment table.
    Check {
        /// The config file (default: $STAGEHAND_CONFIG, else ./stagehand.toml).
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
        /// Only this app's environments.
        app: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Deploy a branch, tag or sha (default: the environment's branch head).
    Deploy {
        /// The app, as named in stagehand.toml (`[apps.<app>]`).
        app: String,
        /// The environment (a configured or a temporary one).
        env: String,
        /// A branch, tag or sha to deploy (required for an environment that follows tags).
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
        /// The app, as named in stagehand.toml (`[apps.<app>]`).
        app: String,
        /// The environment (a configured or a temporary one).
        env: String,
        /// The release to go back to, as `stagehand releases` lists it (default: the one before the live one).
        #[arg(long)]
        to: Option<String>,
        /// Allow going back to a release whose own deploy failed or was rolled back.
        #[arg(long)]
        force: bool,
        /// Stream the log; exit non-zero unless the deploy succeeds.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Deploy the commit live in FROM into TO.
    Promote {
        /// The app, as named in stagehand.toml (`[apps.<app>]`).
        app: String,
        /// The environment whose live commit is deployed.
        from: String,
        /// The environment it is deployed into, built with its own settings.
        to: String,
        /// Stream the log; exit non-zero unless the deploy succeeds.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Copy runtime data (shared directories) from FROM into TO, then run the sync commands.
    Sync {
        /// The app, as named in stagehand.toml (`[apps.<app>]`).
        app: String,
        /// The environment the data is copied from.
        from: String,
        /// The environment the data is copied into.
        to: String,
        /// Allow a protected target.
        #[arg(long)]
        force: bool,
        /// Stream the log; exit non-zero unless the sync succeeds.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Make the running server read its config file again (like SIGHUP).
    Reload {
        #[command(flatten)]
        remote: Remote,
    },
    /// The releases of an environment.
    Releases {
        /// The app, as named in stagehand.toml (`[apps.<app>]`).
        app: String,
        /// The environment (a configured or a temporary one).
        env: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Start the live release's process again, blue/green (environments with `run`).
    Restart {
        /// The app, as named in the config.
        app: String,
        /// The environment (a temporary one by its full name).
        env: String,
        /// Print the restart's log until it ends; exit non-zero unless it succeeds.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Start a stopped environment's process (the same blue/green path as restart).
    Start {
        /// The app, as named in the config.
        app: String,
        /// The environment (a temporary one by its full name).
        env: String,
        /// Print the restart's log until it ends; exit non-zero unless it succeeds.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Pin a preview: it never expires (`expire_after`) until unpinned.
    Pin {
        /// The app, as named in the config.
        app: String,
        /// The preview (a temporary environment, by its full name).
        env: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Unpin a preview: it expires again after `expire_after` without a deploy.
    Unpin {
        /// The app, as named in the config.
        app: String,
        /// The preview (a temporary environment, by its full name).
        env: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stop an environment's process; it stays stopped until `start` or a deploy.
    Stop {
        /// The app, as named in the config.
        app: String,
        /// The environment (a temporary one by its full name).
        env: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Cancel a deploy that has not started: queued, or waiting for its checks.
    Cancel {
        /// The deploy id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// A deploy's log, by id or APP/ENV (the latest there); `--app`: APP/ENV's app log.
    Logs {
        /// A deploy id, or APP/ENV for that environment's latest deploy.
        target: String,
        /// Keep printing lines until the deploy ends; exit non-zero unless it succeeds.
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
        /// State and environments beside the file (./state, ./srv/APP), for a first try without root.
        #[arg(long)]
        local: bool,
    },
}

#[derive(Subcommand)]
enum HookCommand {
    /// Send a signed test delivery to the server.
    Send {
        /// The app to send to, as named in stagehand.toml; its secret signs the delivery.
        app: String,
        /// The GitHub event: `push` or `ping`.
        #[arg(long, default_value = "push")]
        event: String,
        /// Push this branch's current head.
        #[arg(long, conflicts_with = "tag")]
        branch: Option<String>,
        /// Push this tag (what it points at: for an annotated tag, the tag object).
        #[arg(long)]
        tag: Option<String>,
        /// Send the deletion of the --branch or --tag instead of a push.
        #[arg(long)]
        delete: bool,
        /// The head commit's message, e.g. "[skip deploy] docs".
        #[arg(long)]
        message: Option<String>,
        /// A webhook-samples/ JSON file to send instead of the built-in one.
        #[arg(long)]
        sample: Option<PathBuf>,
        /// Send as this forge does (default: the app's `forge`).
        #[arg(long, value_parser = parse_forge)]
        forge: Option<stagehand::core::forge::Forge>,
        #[command(flatten)]
        remote: Remote,
    },
}

fn parse_forge(name: &str) -> Result<stagehand::core::forge::Forge, String> {
    stagehand::core::forge::Forge::parse(name)
        .ok_or_else(|| format!("{name:?} is not github, gitlab, gitea, forgejo or bitbucket"))
}

/// `hook send` as GitLab, Gitea, Forgejo or Bitbucket would send it.
fn hook_send_forge(
    forge: stagehand::core::forge::Forge,
    app: &stagehand::config::AppConfig,
    server: &str,
    event: &str,
    edit: &stagehand::hook_send::PushEdit,
    sample: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use stagehand::hook_forge;
    let change = hook_forge::resolve(app, edit)?;
    let (forge_event, builtin) = hook_forge::sample_for(forge, change.as_ref());
    let sample_text = match &sample {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => builtin.to_owned(),
    };
    // `--event push` (the default) means whatever this forge calls the change: a Gitea
    // or Forgejo branch deletion is a `delete` event, a GitLab tag a `Tag Push Hook`.
    let event = if event == "push" { forge_event } else { event };
    let delivery = hook_forge::build(
        forge,
        &app.repository,
        event,
        &sample_text,
        change.as_ref(),
        edit.message.as_deref(),
    )?;
    let (status, answer) =
        actix_web::rt::System::new().block_on(hook_forge::send(server, app, &delivery))?;
    if json {
        outln!("{answer:#}");
    } else {
        outln!("{status} {answer:#}");
    }
    Ok(if status < 300 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs what it does; the other commands print their own output and
    // only want warnings from the library underneath.
    let level = match cli.command {
        Command::Serve { .. } | Command::FrontDoor { .. } => tracing::Level::INFO,
        _ => tracing::Level::WARN,
    };
    // Colour only for a person at a terminal: a redirected log (systemd, `> file`)
    // gets plain text without anyone having to know about NO_COLOR.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let logs = tracing_subscriber::fmt()
        .with_ansi(ansi)
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
            outln!("{}", config.describe().trim_end());
            if config.server.api_token.is_none() {
                outln!(
                    "note: {} is not set: the API and dashboard will refuse every request",
                    config.server.api_token_env
                );
            }
            outln!("{}: ok", config.file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { once, keep, listen } => {
            let options = stagehand::demo::DemoOptions { once, keep, listen };
            system().block_on(stagehand::demo::run(options, env))
        }
        Command::Secret => {
            outln!("{}", stagehand::hook_send::random_hex(32)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Init {
            output,
            repo,
            github,
            force,
            local,
        } => init(&output, &repo, &github, force, local),
        Command::Hook {
            command:
                HookCommand::Send {
                    app,
                    event,
                    branch,
                    tag,
                    delete,
                    message,
                    sample,
                    forge,
                    remote,
                },
        } => {
            let config = load(remote.config.clone(), &env)?;
            let server = server_url(&remote, &env);
            let app_config = stagehand::core::ids::AppName::parse(&app)
                .ok()
                .and_then(|name| config.apps.get(&name))
                .with_context(|| format!("no app {app:?} in {}", config.file.display()))?;
            let forge = forge.unwrap_or(app_config.forge);
            if forge != stagehand::core::forge::Forge::Github {
                let edit = stagehand::hook_send::PushEdit {
                    branch,
                    tag,
                    delete,
                    message,
                };
                return hook_send_forge(
                    forge,
                    app_config,
                    &server,
                    &event,
                    &edit,
                    sample,
                    remote.json,
                );
            }
            let sample_text = match &sample {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None if event == "ping" => stagehand::hook_send::PING_SAMPLE.to_owned(),
                None => stagehand::hook_send::PUSH_SAMPLE.to_owned(),
            };
            let edit = stagehand::hook_send::PushEdit {
                branch,
                tag,
                delete,
                message,
            };
            let delivery = stagehand::hook_send::build(app_config, &event, &sample_text, &edit)?;
            let (status, answer) =
                system().block_on(stagehand::hook_send::send(&server, app_config, &delivery))?;
            if remote.json {
                outln!("{answer:#}");
            } else {
                outln!("{status} {answer:#}");
            }
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
                | Command::Reload { remote }
                | Command::Restart { remote, .. }
                | Command::Start { remote, .. }
                | Command::Stop { remote, .. }
                | Command::Cancel { remote, .. }
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
            force,
            follow,
            ..
        } => {
            let answer = cli::rollback(&client, &app, &env, to.as_deref(), force).await?;
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
        Command::Reload { .. } => cli::reload(&client, out).await?,
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
        Command::Cancel { id, .. } => cli::cancel(&client, &id, out).await?,
        Command::Pin { app, env, .. } => {
            let answer = client
                .post(
                    &format!("/api/apps/{app}/environments/{env}/pin"),
                    &serde_json::json!({}),
                )
                .await?;
            if out.json {
                outln!("{answer:#}");
            } else {
                outln!("{app}/{env}: pinned (it does not expire)");
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
                outln!("{answer:#}");
            } else {
                outln!("{app}/{env}: unpinned (it expires after expire_after without a deploy)");
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

fn init(
    output: &Path,
    repo: &str,
    github: &str,
    force: bool,
    local: bool,
) -> anyhow::Result<ExitCode> {
    if output.exists() && !force {
        anyhow::bail!("{} exists: pass --force to overwrite it", output.display());
    }
    let starter = stagehand::init::Starter::new(repo, github, local);
    std::fs::write(output, starter.text())
        .with_context(|| format!("writing {}", output.display()))?;
    outln!("wrote {}", output.display());
    outln!("{}", starter.next_steps(&output.display().to_string()));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Issue 16 item 15: every argument of every command says what it is for in `--help`.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: String, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "stagehand".into(), &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }
}
