//! What `stagehand serve` refuses at start, with the real binary: a state dir another
//! server holds, a damaged database.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::*;

/// Runs a server that is expected to refuse to start: its exit code and stderr. Fails
/// (instead of hanging) if it is still running after a generous wait.
fn refused_start(config: &Path) -> (i32, String) {
    let mut child = ServerProcess(
        serve_command(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server started anyway");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code().unwrap_or(-1), stderr)
}

#[actix_web::test]
async fn a_second_server_on_the_same_state_dir_exits_and_touches_nothing() {
    let b = Harness::builder().app(
        r#"build = ["echo started; while [ ! -f \"$STAGEHAND_SHARED_DIR/go\" ]; do sleep 0.05; done"]
shared = ["storage/"]
[apps.shop.environments.staging]
branch = "develop"
"#,
    );
    let repo = b.repo().to_owned();
    // The build waits for the test's go-ahead, so it is running while the second
    // server starts.
    let config = b.write_config();
    let (first, client) = spawn_server(&config);
    let sha = git(&repo, &["rev-parse", "develop"]);
    let (status, answer) = client.push(&push_body("refs/heads/develop", &sha)).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["deploy"]["id"].clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client.log(&id).await.contains("out  started") {
        assert!(Instant::now() < deadline, "the build never started");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }

    let config2 = config.clone();
    let (code, stderr) = actix_web::rt::task::spawn_blocking(move || refused_start(&config2))
        .await
        .unwrap();
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "pid {}, listening on {}",
            first.0.id(),
            client.url
        )),
        "{stderr}"
    );
    assert!(stderr.contains("stop it first"), "{stderr}");

    // The first server's deploy kept running, and finishes.
    let path = format!("/api/deploys/{}", id.as_str().unwrap());
    let (_, still) = client.get(&path).await;
    assert_eq!(still["status"], "running", "{still}");
    let release = still["release"].as_str().unwrap().to_owned();
    let staging = b.dir().join("srv/staging");
    assert!(staging.join("releases").join(&release).is_dir());
    std::fs::write(staging.join("shared/go"), "").unwrap();
    let done = client.wait(&id, 60).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        std::fs::read_link(staging.join("current")).unwrap(),
        Path::new("releases").join(&release)
    );
    drop(first);

    // The lock died with its holder (SIGKILL): a new server starts.
    let (_again, client) = spawn_server(&config);
    let (status, _) = client.get("/api/apps").await;
    assert_eq!(status, 200);
}

#[test]
fn a_damaged_database_is_refused_with_what_to_do() {
    let b = Harness::builder().app("[apps.shop.environments.staging]\nbranch = \"develop\"\n");
    let config = b.write_config();
    let db = b.dir().join("state/stagehand.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    std::fs::write(&db, vec![0x5A; 64 * 1024]).unwrap();
    let (code, stderr) = refused_start(&config);
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("the database {} is damaged", db.display())),
        "{stderr}"
    );
    assert!(stderr.contains("restore it from a backup"), "{stderr}");
    // Refused, not repaired: the file is as it was.
    assert_eq!(std::fs::read(&db).unwrap(), vec![0x5A; 64 * 1024]);
}
