//! `export_ignore = true` end to end: a push's release leaves out what the commit's
//! `.gitattributes` marks `export-ignore`, the log says so, and the next deploy (which
//! recycles the spare written after the first) leaves out the same, including a path
//! marked only in the new commit.

use std::path::Path;

use crate::support::*;

fn toml(dir: &Path, repo: &Path) -> String {
    shop_toml_with(
        dir,
        repo,
        "",
        r#"keep_releases = 3

[apps.shop.environments.staging]
branch = "develop"
export_ignore = true

[apps.shop.environments.production]
branch = "main"
"#,
    )
}

#[actix_web::test]
async fn a_release_leaves_out_what_gitattributes_marks_and_so_does_the_recycled_next_one() {
    let s = Harness::builder().config(toml).start().await;
    git(&s.repo, &["checkout", "-q", "develop"]);
    commit(
        &s.repo,
        "export-ignore",
        &[
            (
                ".gitattributes",
                "/tests export-ignore\n*.md export-ignore\n",
            ),
            ("tests/unit.php", "<?php // a test\n"),
            ("docs/GUIDE.md", "a guide\n"),
            ("src/app.php", "<?php // the app\n"),
            ("CHANGELOG.txt", "v1\n"),
        ],
    );
    let first = s.push_and_wait("develop").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let releases = s.root.join("staging/releases");
    let release = releases.join(first["release"].as_str().unwrap());
    assert!(release.join("src/app.php").is_file());
    assert!(release.join(".gitattributes").is_file());
    assert!(
        release.join("docs").is_dir(),
        "a directory with every entry left out stays, as in git archive"
    );
    for gone in ["tests", "docs/GUIDE.md"] {
        assert!(!release.join(gone).exists(), "{gone} must be left out");
    }
    let log = s.log(&first["id"]).await;
    assert!(
        log.contains("paths left out: .gitattributes marks them export-ignore"),
        "{log}"
    );

    // The spare of the first tree, then a commit that also marks CHANGELOG.txt.
    let spare = releases.join(format!(
        ".spare-{}.ahead",
        first["release"].as_str().unwrap()
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !spare.is_dir() {
        assert!(std::time::Instant::now() < deadline, "no spare written");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    commit(
        &s.repo,
        "leave the changelog out too",
        &[(
            ".gitattributes",
            "/tests export-ignore\n*.md export-ignore\nCHANGELOG.txt export-ignore\n",
        )],
    );
    let second = s.push_and_wait("develop").await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let log = s.log(&second["id"]).await;
    assert!(log.contains("recycled the spare tree of"), "{log}");
    let release = releases.join(second["release"].as_str().unwrap());
    assert!(release.join("src/app.php").is_file());
    for gone in ["tests", "docs/GUIDE.md", "CHANGELOG.txt"] {
        assert!(!release.join(gone).exists(), "{gone} must be left out");
    }

    // The same commit in an environment without the switch: every path.
    git(&s.repo, &["branch", "-f", "main", "develop"]);
    let production = s.push_and_wait("main").await;
    assert_eq!(production["status"], "succeeded", "{production}");
    let full = s
        .root
        .join("production/releases")
        .join(production["release"].as_str().unwrap());
    for kept in ["tests/unit.php", "docs/GUIDE.md", "CHANGELOG.txt"] {
        assert!(full.join(kept).is_file(), "{kept} must be there");
    }
    s.stop().await;
}
