//! Build output on its way into a deploy's log: masked before it is split, stripped of
//! terminal control sequences, capped per deploy, partial lines and `\r` redraws.

use std::path::Path;

use crate::support::*;

const PASSWORD: &str = "correct-horse-battery-staple";

fn setup_toml(dir: &Path, repo: &Path, app_keys: &str) -> String {
    shop_toml(
        dir,
        repo,
        &format!(
            r#"build = ["if [ -f build.sh ]; then sh build.sh; fi"]
shared = ["storage/"]
env = {{ DB_PASSWORD = "{PASSWORD}" }}
{app_keys}
[apps.shop.environments.staging]
branch = "develop"
"#
        ),
    )
}

async fn deploy_build_script(app_keys: &str, script: &str) -> (Harness, serde_json::Value, String) {
    let app_keys = app_keys.to_owned();
    let s = Harness::builder()
        .config(|dir, repo| setup_toml(dir, repo, &app_keys))
        .start()
        .await;
    git(&s.repo, &["checkout", "-q", "develop"]);
    commit(&s.repo, "Build script", &[("build.sh", script)]);
    let deploy = s.push_and_wait("develop").await;
    let log = s.log(&deploy["id"]).await;
    (s, deploy, log)
}

/// Issue 11 items 6 and 7: a secret across the 16 KiB split showed in two unmasked
/// halves; base64 and hex forms of a secret were not masked; escape sequences from a
/// build reached terminals raw.
#[actix_web::test]
async fn regression_secrets_are_masked_across_the_split_and_in_encodings_and_controls_are_stripped()
{
    let script = r#"python3 -c 'import os; print("A"*16380 + os.environ["DB_PASSWORD"])'
python3 -c 'import base64, os; v = os.environ["DB_PASSWORD"].encode(); print("basic", base64.b64encode(v).decode())'
python3 -c 'import base64, os; v = os.environ["DB_PASSWORD"].encode(); print("url", base64.urlsafe_b64encode(v).decode().rstrip("="))'
python3 -c 'import os; v = os.environ["DB_PASSWORD"].encode(); print("hex", v.hex(), v.hex().upper())'
printf '\033[31mred\033[0m \033]0;owned\007title \033]8;;https://evil.example\033\\link\033]8;;\033\\ bell\007\n'
"#;
    let (s, deploy, log) = deploy_build_script("", script).await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}\n{log}");
    for piece in [&PASSWORD[..10], &PASSWORD[PASSWORD.len() - 10..]] {
        assert!(!log.contains(piece), "{piece:?} leaked");
    }
    for encoded in [
        "Y29ycmVjdC1ob3JzZS",
        "636f72726563742d686f727365",
        "636F72726563742D686F727365",
    ] {
        assert!(!log.contains(encoded), "{encoded} leaked");
    }
    assert!(log.contains("out  basic ***"), "{log}");
    assert!(log.contains("out  url ***"), "{log}");
    assert!(log.contains("out  hex *** ***"), "{log}");
    assert!(log.contains("out  red title link bell"), "{log}");
    let controls: Vec<char> = log
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(
        controls.is_empty(),
        "control characters in the log: {controls:?}"
    );
    s.stop().await;
}

/// Issue 11 item 9: a build printing without end made a log without end.
#[actix_web::test]
async fn regression_a_deploy_log_is_capped_and_the_build_goes_on() {
    let script =
        "seq 1 2000\necho still building > \"$STAGEHAND_SHARED_DIR/after-cap\"\necho last line\n";
    let (s, deploy, log) = deploy_build_script(r#"max_log_size = "8KiB""#, script).await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    assert_eq!(
        log.matches("log truncated at 8 KiB: further lines dropped")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains("out  1\n"), "{log}");
    assert!(!log.contains("out  2000"), "{log}");
    assert!(!log.contains("last line"), "{log}");
    // The build ran to its end; stagehand's own lines still say how the deploy ended.
    assert!(s.root.join("staging/shared/after-cap").exists());
    assert!(log.trim_end().ends_with("succeeded"), "{log}");
    let id = deploy["id"].as_str().unwrap();
    let file = std::fs::metadata(s.dir().join(format!("state/logs/{id}.log"))).unwrap();
    assert!(file.len() < 12 * 1024, "{} bytes", file.len());
    s.stop().await;
}

/// Issue 11 item 11: a prompt without a newline was invisible until its newline, and
/// `\r` progress bars became 16 KiB lines.
#[actix_web::test]
async fn regression_a_partial_line_shows_while_the_build_waits_and_redraws_keep_the_final_state() {
    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let root = b.root();
    let toml = setup_toml(b.dir(), &repo, "");
    let full = b.toml(&toml).start().await;
    let client = full.client();
    git(&repo, &["checkout", "-q", "develop"]);
    let script = r#"i=0; while [ $i -lt 3000 ]; do printf 'downloading %d/2999\r' $i; i=$((i+1)); done; echo
printf 'Continue? [y/n] '
while [ ! -f "$STAGEHAND_SHARED_DIR/answer" ]; do sleep 0.05; done
echo
echo answered
"#;
    let sha = commit(&repo, "Prompt", &[("build.sh", script)]);
    let (_, answer) = client.push(&push_body("refs/heads/develop", &sha)).await;
    let id = answer["deploy"]["id"].clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !client.log(&id).await.contains("out  Continue? [y/n] ") {
        assert!(
            std::time::Instant::now() < deadline,
            "the prompt never showed: {}",
            client.log(&id).await
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    std::fs::create_dir_all(root.join("staging/shared")).unwrap();
    std::fs::write(root.join("staging/shared/answer"), "y\n").unwrap();
    let deploy = client.wait(&id, 60).await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    let log = client.log(&id).await;
    assert!(log.contains("out  downloading 2999/2999\n"), "{log}");
    assert!(!log.contains("downloading 1500/2999"), "{log}");
    assert!(
        log.lines().all(|l| l.len() < 200),
        "a redraw became a long line"
    );
    let after_prompt = log
        .lines()
        .skip_while(|l| !l.ends_with("out  Continue? [y/n] "))
        .nth(1)
        .unwrap_or_default();
    assert!(after_prompt.ends_with("out  answered"), "{after_prompt:?}");
    full.stop().await;
}
