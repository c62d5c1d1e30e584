//! The `stagehand` binary: parses the command line and hands off to the library.
//! Errors end here, printed with their chain.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "stagehand",
    version,
    about = "Push-to-deploy for multi-stage environments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the webhook server and the deploy runner.
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate the config and print the branch → environment table.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let result = match cli.command {
        Command::Serve { config } => load(config, &env).and_then(|config| {
            actix_web::rt::System::new().block_on(stagehand::server::serve(config, env.clone()))
        }),
        Command::Check { config } => load(config, &env).map(|config| {
            print!("{}", config.describe());
            if config.server.api_token.is_none() {
                println!(
                    "note: {} is not set: the API and dashboard will refuse every request",
                    config.server.api_token_env
                );
            }
            println!("{}: ok", config.file.display());
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(
    path: Option<PathBuf>,
    env: &HashMap<String, String>,
) -> anyhow::Result<stagehand::config::Config> {
    let path = path.unwrap_or_else(|| stagehand::config::default_path(env));
    Ok(stagehand::config::load(&path, env)?)
}
