//! An environment's address at the front door, for links (dashboard, `routes`, GitHub
//! Deployments' `environment_url`). Pure: names and config only.
//!
//! The scheme and port: with `[server] public_url` set, stagehand is behind a TLS
//! proxy, and so is the front door (deploy/nginx.conf): its scheme, no port. Without
//! it, plain `http://` on the front door's own port.

use crate::config::Config;
use crate::core::hosts::HostPattern;
use crate::core::ids::{AppName, EnvironmentName};

/// The first of `configured`'s hosts, made for `environment`, as a URL; `None` when it
/// has no hosts or there is no front door.
pub fn environment_address(
    config: &Config,
    app: &AppName,
    configured: &EnvironmentName,
    environment: &EnvironmentName,
) -> Option<String> {
    let env = config.apps.get(app)?.environment(configured)?;
    let host = match env.hosts.first()? {
        HostPattern::Exact(host) => host.clone(),
        HostPattern::Template { prefix, suffix } => format!("{prefix}{environment}{suffix}"),
    };
    match (&config.server.public_url, config.server.front_door) {
        (Some(public), _) => {
            let scheme = public.split_once("://").map_or("https", |(s, _)| s);
            Some(format!("{scheme}://{host}/"))
        }
        (None, Some(door)) => Some(format!("http://{host}:{}/", door.port())),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    #[test]
    fn address_table() {
        fn check(server: &str, env: &str, expected: Option<&str>) {
            let toml = format!(
                "[server]\n{server}\n[apps.shop]\nrepo = \"/r\"\ngithub = \"a/s\"\nsecret_env = \"S\"\nroot = \"/srv\"\n\
                 [apps.shop.environments.production]\nbranch = \"main\"\nhosts = [\"shop.test\", \"www.shop.test\"]\n\
                 [apps.shop.environments.preview]\nbranch = \"feature/*\"\nhosts = [\"{{environment}}.p.test\"]\n\
                 [apps.shop.environments.staging]\nbranch = \"develop\"\n"
            );
            let vars: HashMap<String, String> = [("S".to_owned(), "x".to_owned())].into();
            let config =
                Config::from_sources(Path::new("/s.toml"), &toml, &vars, &|_| Ok(String::new()))
                    .unwrap();
            let configured = if env.starts_with("preview") {
                "preview"
            } else {
                env
            };
            let got = environment_address(
                &config,
                &AppName::parse("shop").unwrap(),
                &EnvironmentName::parse(configured).unwrap(),
                &EnvironmentName::parse(env).unwrap(),
            );
            assert_eq!(got.as_deref(), expected, "{server} {env}");
        }
        let door = "front_door = \"127.0.0.1:8080\"";
        check(door, "production", Some("http://shop.test:8080/"));
        check(
            door,
            "preview-login",
            Some("http://preview-login.p.test:8080/"),
        );
        check(door, "staging", None);
        check("", "production", None);
        check(
            "public_url = \"https://deploy.test\"",
            "preview-login",
            Some("https://preview-login.p.test/"),
        );
    }
}
