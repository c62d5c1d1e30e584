//! Decoding a verified delivery: any content type, any body. Every forge's decoder
//! (`core::forge::decode`) for each of its event names must answer without panicking, what they accept
//! must hold the invariants the rest of stagehand relies on (full lowercase shas, refs
//! without control characters), and the intake decision over a fixed app must be made
//! for every accepted event, naming a temporary environment that is a valid name.
#![no_main]

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use stagehand::config::{AppConfig, Config};
use stagehand::core::event::{Event, GitRef};
use stagehand::core::forge::{self, Forge};
use stagehand::core::ids::EnvironmentName;
use stagehand::core::routing::new_temporary_name;
use stagehand::intake;
use stagehand::store::{Intent, Target};

#[derive(Arbitrary, Debug)]
enum ContentType<'a> {
    Missing,
    Json,
    Form,
    FormWithCharset,
    FormUpperCase,
    Other(&'a str),
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    content_type: ContentType<'a>,
    body: &'a [u8],
}

/// Each forge and the event names its decoder reads (plus one it ignores).
const EVENTS: [(Forge, &[&str]); 5] = [
    (
        Forge::Github,
        &["push", "delete", "ping", "pull_request", "issues"],
    ),
    (
        Forge::Gitlab,
        &[
            "Push Hook",
            "Tag Push Hook",
            "Merge Request Hook",
            "Pipeline Hook",
        ],
    ),
    (
        Forge::Gitea,
        &["push", "delete", "create", "pull_request", "issues"],
    ),
    (Forge::Forgejo, &["push", "delete", "pull_request"]),
    (
        Forge::Bitbucket,
        &[
            "repo:push",
            "pullrequest:created",
            "pullrequest:fulfilled",
            "pullrequest:approved",
        ],
    ),
];

fn app() -> &'static AppConfig {
    static APP: OnceLock<AppConfig> = OnceLock::new();
    APP.get_or_init(|| {
        let toml = r#"
            [apps.shop]
            repo = "/srv/git/shop.git"
            github = "acme/shop"
            secret_env = "SHOP_WEBHOOK_SECRET"
            root = "/srv/shop"
            [apps.shop.environments.production]
            branch = "main"
            protected = true
            [apps.shop.environments.staging]
            branch = "develop"
            auto_deploy = false
            [apps.shop.environments.preview]
            branch = "feature/*"
            [apps.shop.environments.release_candidates]
            branch = "release/**"
            [apps.shop.environments.tagged]
            tag = "v*"
            [apps.shop.environments.review]
            pull_requests = "main"
            fork_label = "preview ok"
        "#;
        let env = HashMap::from([("SHOP_WEBHOOK_SECRET".to_string(), "s".to_string())]);
        let config = Config::from_sources(Path::new("fuzz.toml"), toml, &env, &|_| {
            Err(std::io::Error::other("no files"))
        })
        .expect("the fixed config is valid");
        config.apps.into_values().next().expect("one app")
    })
}

fn check_ref(git_ref: &GitRef) {
    let name = git_ref.short();
    assert!(!git_ref.full().is_empty());
    assert!(!git_ref.full().chars().any(char::is_control), "{git_ref:?}");
    if let GitRef::Branch(_) | GitRef::Tag(_) = git_ref {
        assert!(!name.chars().any(char::is_control));
    }
}

fn check_temporary(base: &EnvironmentName, branch: &str) {
    for taken in [false, true] {
        let name = new_temporary_name(base, branch, |_| taken)
            .unwrap_or_else(|e| panic!("no valid name for {branch:?}: {e}"));
        assert!(name.as_str().len() <= 63, "{name}");
    }
}

fuzz_target!(|input: Input<'_>| {
    let content_type = match input.content_type {
        ContentType::Missing => None,
        ContentType::Json => Some("application/json"),
        ContentType::Form => Some("application/x-www-form-urlencoded"),
        ContentType::FormWithCharset => Some("application/x-www-form-urlencoded; charset=utf-8"),
        ContentType::FormUpperCase => Some("APPLICATION/X-WWW-FORM-URLENCODED"),
        ContentType::Other(text) => Some(text),
    };
    for (forge, names) in EVENTS {
        for name in names.iter().copied() {
            let Ok(events) = forge::decode(forge, name, content_type, input.body) else {
                continue;
            };
            for event in events {
                check(&event);
            }
        }
    }
});

fn check(event: &Event) {
    {
        match event {
            Event::Push { push, .. } => {
                check_ref(&push.git_ref);
                assert_eq!(GitRef::from_full(&push.git_ref.full()), push.git_ref);
                for sha in [&push.before, &push.after] {
                    let s = sha.as_str();
                    assert!(matches!(s.len(), 40 | 64), "{s:?}");
                    assert!(s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
                    assert_eq!(sha.short().len(), 7);
                }
            }
            Event::Delete { git_ref, .. } => check_ref(git_ref),
            Event::PullRequest { pr, .. } => {
                assert!(pr.head_ref.starts_with("refs/"), "{pr:?}");
                assert!(!pr.head_ref.chars().any(char::is_control), "{pr:?}");
                assert!(pr.head.bytes().all(|b| b.is_ascii_hexdigit()), "{pr:?}");
            }
            Event::Ping { .. } | Event::Other { .. } | Event::Ignored { .. } => {}
        }
        match intake::decide(app(), event) {
            Intent::Deploy(deploy) => {
                if let Target::Temporary { base, branch, .. } = &deploy.target {
                    check_temporary(base, branch);
                }
            }
            Intent::Teardown { base, branch, .. } => check_temporary(&base, &branch),
            Intent::Ping | Intent::Ignore { .. } => {}
        }
    }
}
