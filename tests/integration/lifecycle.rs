//! Previews' lifecycle: teardown commands on the way out.

use crate::common::*;

#[actix_web::test]
async fn teardown_commands_run_in_the_live_release_and_a_failing_one_does_not_stop_the_teardown() {
    let marks = tempfile::tempdir().unwrap();
    let marks_path = marks.path().display().to_string();
    let s = Setup::start(|dir, repo| {
        shop_toml(
            dir,
            repo,
            &format!(
                r#"teardown = ["echo dropping the database of $STAGEHAND_ENVIRONMENT from $(cat REVISION)", "echo no DNS API >&2; exit 3", "touch \"$MARKS/$STAGEHAND_ENVIRONMENT-torn-down\""]
[apps.shop.environments.production]
branch = "main"
[apps.shop.environments.preview]
branch = "feature/*"
env = {{ MARKS = "{marks_path}" }}
"#
            ),
        )
    })
    .await;
    git(&s.repo, &["checkout", "-q", "-b", "feature/New_Cart!"]);
    let sha = commit(&s.repo, "preview", &[("cart.txt", "cart")]);
    assert_eq!(
        s.push_and_wait("feature/New_Cart!").await["status"],
        "succeeded"
    );
    let env = "preview-feature-new-cart";
    assert!(s.root.join(env).exists());

    let (status, answer) = s.client.push(&sample("push-delete-branch.json")).await;
    assert_eq!(status, 202, "{answer}");
    let teardown = s.client.wait(&answer["deploy"]["id"], 30).await;
    assert_eq!(teardown["status"], "succeeded", "{teardown}");
    let log = s.client.log(&answer["deploy"]["id"]).await;
    assert!(
        log.contains(&format!("dropping the database of {env} from {sha}")),
        "{log}"
    );
    assert!(log.contains("no DNS API"), "{log}");
    assert!(log.contains("the teardown goes on"), "{log}");
    // The command after the failing one ran, and the directory went afterwards.
    assert!(marks.path().join(format!("{env}-torn-down")).exists());
    assert!(!s.root.join(env).exists());
    s.full.stop().await;
}
