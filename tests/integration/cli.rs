//! The `stagehand` binary as an operator runs it.

use std::process::Command;

fn stagehand() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stagehand"))
}

#[test]
fn check_accepts_the_example_config_and_prints_the_table() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/stagehand.example.toml");
    let out = stagehand()
        .args(["check", "--config", example])
        .env("SHOP_WEBHOOK_SECRET", "s3cret")
        .env_remove("STAGEHAND_API_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "production",
        "branch main",
        "branches feature/*",
        "tags v*",
        "manual",
        "seeded from staging",
        ": ok",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing in:\n{stdout}");
    }
    assert!(!stdout.contains("s3cret"));
}

#[test]
fn check_fails_naming_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stagehand.toml");
    std::fs::write(
        &file,
        "[apps.shop]\nrepo = \"/r\"\ngithub = \"acme/shop\"\nsecret_env = \"NOPE_SECRET\"\nroot = \"/srv\"\n[apps.shop.environments.production]\nbranch = \"main\"\n",
    )
    .unwrap();
    let out = stagehand()
        .args(["check", "--config"])
        .arg(&file)
        .env_remove("NOPE_SECRET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("apps.shop.secret_env: environment variable NOPE_SECRET is not set"),
        "{stderr}"
    );

    let missing = stagehand()
        .args(["check", "--config", "/nonexistent/stagehand.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("/nonexistent/stagehand.toml: cannot read")
    );
}

#[test]
fn demo_once_deploys_everything_and_exits_zero() {
    let out = stagehand().args(["demo", "--once"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for env in ["staging", "preview-feature-hello", "production"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with(env) && l.contains("succeeded")),
            "{env} did not succeed:\n{stdout}"
        );
    }
    assert!(stdout.contains("Hello from production"), "{stdout}");
    assert!(
        stdout.contains("out  building demo for staging"),
        "logs are shown: {stdout}"
    );
    assert!(stdout.contains("dashboard  http://127.0.0.1:"), "{stdout}");
    // python3 is on this machine: staging runs serve.py, and a visitor sees its page.
    assert!(
        stdout.contains("staging runs an app process")
            && stdout.contains("it answers: <h1>Hello from staging</h1>")
            && stdout.contains("stopped staging's app process"),
        "{stdout}"
    );
    // Every environment has an address at the front door, and it answered with its page.
    for (env, page) in [
        ("staging", "staging"),
        ("preview-feature-hello", "preview"),
        ("production", "production"),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(&format!("http://{env}.localhost:"))
                    && l.ends_with(&format!("answers: <h1>Hello from {page}</h1>"))),
            "{env} has no answering address:\n{stdout}"
        );
    }
}

#[test]
fn secret_is_strong_and_init_writes_a_config_that_checks() {
    let a = stagehand().arg("secret").output().unwrap();
    let b = stagehand().arg("secret").output().unwrap();
    let (a, b) = (
        String::from_utf8_lossy(&a.stdout).trim().to_owned(),
        String::from_utf8_lossy(&b.stdout).trim().to_owned(),
    );
    assert_eq!(a.len(), 64);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stagehand.toml");
    let init = stagehand()
        .args([
            "init",
            "--github",
            "acme/blog",
            "--repo",
            "/srv/git/blog.git",
            "--output",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let check = stagehand()
        .args(["check", "--config"])
        .arg(&file)
        .env("BLOG_WEBHOOK_SECRET", &a)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(stdout.contains("branches feature/*"), "{stdout}");
    let again = stagehand()
        .args(["init", "--output"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "init must not overwrite without --force"
    );

    // Issue 16 item 16: `--local` needs no root, and the hint names the API token too.
    let local = dir.path().join("local.toml");
    let init = stagehand()
        .args(["init", "--local", "--github", "acme/blog", "--output"])
        .arg(&local)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&init.stdout);
    assert!(init.status.success(), "{stdout}");
    assert!(
        stdout.contains("STAGEHAND_API_TOKEN=$(stagehand secret)"),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&local).unwrap();
    assert!(text.contains("state_dir = \"state\"") && text.contains("root = \"srv/blog\""));
    let check = stagehand()
        .args(["check", "--config"])
        .arg(&local)
        .env("BLOG_WEBHOOK_SECRET", &a)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

/// The systemd unit, with ExecStart pointed at the binary just built, passes
/// `systemd-analyze verify` where systemd is installed.
#[test]
fn the_systemd_unit_verifies() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: unit not verified");
        return;
    };
    assert!(probe.status.success());
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/stagehand.service"
    ))
    .unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/stagehand serve"),
        "{unit}"
    );
    assert!(unit.contains("NoNewPrivileges=true") && unit.contains("ProtectSystem=strict"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stagehand.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/stagehand", env!("CARGO_BIN_EXE_stagehand")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 16 item 12: a redirected `serve` log is plain text, without `NO_COLOR`.
#[test]
fn serve_writes_no_colour_codes_into_a_redirected_log() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stagehand.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{state}\"\n\n[apps.shop]\n\
             repo = \"{repo}\"\ngithub = \"acme/shop\"\nsecret_env = \"SHOP_WEBHOOK_SECRET\"\n\
             root = \"{root}\"\n[apps.shop.environments.staging]\nbranch = \"develop\"\n",
            state = dir.path().join("state").display(),
            repo = dir.path().join("repo").display(),
            root = dir.path().join("srv").display(),
        ),
    )
    .unwrap();
    let mut child = stagehand()
        .args(["serve", "--config"])
        .arg(&config)
        .env("SHOP_WEBHOOK_SECRET", "s3cret")
        .env_remove("NO_COLOR")
        .env_remove("STAGEHAND_API_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("listening on"), "{first}");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("STAGEHAND_API_TOKEN is not set"), "{log}");
    assert!(
        !log.contains('\x1b'),
        "colour codes in a redirected log: {log:?}"
    );
}

/// Issue 16 item 11: `stagehand … | head` ends quietly when the reader goes away.
#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = stagehand()
        .arg("secret")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
