//! `[server] front_door`, `trusted_proxies`, `hosts` and `static`: each problem counted and named.

use std::collections::HashMap;
use std::path::Path;

use crate::config::{Config, ConfigError};

/// The problems of a config with `rest` after two apps' keys (empty: it is valid).
fn problems(server: &str, rest: &str) -> Vec<String> {
    let toml = format!(
        r#"[server]
{server}
[apps.shop]
repo = "/r"
github = "acme/shop"
secret_env = "S"
root = "/srv/shop"
[apps.blog]
repo = "/b"
github = "acme/blog"
secret_env = "S"
root = "/srv/blog"
{rest}"#
    );
    let env: HashMap<String, String> = [("S".to_owned(), "x".to_owned())].into();
    match Config::from_sources(
        Path::new("/etc/s.toml"),
        &toml,
        &env,
        &|_| Ok(String::new()),
    ) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(e) => vec![e.to_string()],
    }
}

#[test]
fn front_door_keys_table() {
    /// `expected`: how many problems, and what their text names.
    fn check(server: &str, rest: &str, count: usize, names: &[&str]) {
        let got = problems(server, rest);
        assert_eq!(got.len(), count, "{got:?}");
        let text = got.join("\n");
        for want in names {
            assert!(text.contains(want), "{text} lacks {want}");
        }
    }
    let envs = |shop_hosts: &str, blog_hosts: &str| {
        format!(
            "[apps.shop.environments.production]\nbranch = \"main\"\nhosts = {shop_hosts}\n\
             [apps.shop.environments.preview]\nbranch = \"feature/*\"\nhosts = [\"{{environment}}.p.test\"]\n\
             [apps.blog.environments.production]\nbranch = \"main\"\nhosts = {blog_hosts}\n"
        )
    };
    check("", &envs("[\"shop.test\"]", "[\"blog.test\"]"), 0, &[]);
    check(
        "",
        &envs("[\"shop.test\"]", "[\"SHOP.test\"]"),
        1,
        &["apps.shop.environments.production.hosts", "\"shop.test\""],
    );
    check(
        "",
        &envs("[\"preview-x.p.test\"]", "[\"blog.test\"]"),
        1,
        &[
            "apps.shop.environments.production.hosts",
            "shop.preview",
            "preview-x.p.test",
        ],
    );
    check(
        "",
        &envs("[\"{environment}.test\"]", "[]"),
        1,
        &["apps.shop.environments.production.hosts"],
    );
    check(
        "",
        &envs("[\"shop test\"]", "[]"),
        1,
        &["apps.shop.environments.production.hosts"],
    );
    check(
        "front_door = \"8080\"\ntrusted_proxies = [\"10.0.0.1\", \"proxy\"]",
        &envs("[]", "[]"),
        2,
        &["server.front_door", "server.trusted_proxies"],
    );
    check(
        "",
        &format!("{}static = \"../etc\"\n", envs("[]", "[]")),
        1,
        &["apps.blog.environments.production.static"],
    );
}
