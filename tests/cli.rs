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
