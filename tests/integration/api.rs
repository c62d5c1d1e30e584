//! `/api`, `/healthz` and `/metrics` against the real server.

use crate::support::*;
use serde_json::json;

#[actix_web::test]
async fn api_needs_the_token() {
    let server = Harness::builder().without_runner().start().await;
    for path in ["/api/apps", "/api/deploys", "/api/deploys/1"] {
        let (status, answer, _) = server.get_with(path, None).await;
        assert_eq!(status, 401, "{path}");
        assert!(
            answer["error"].as_str().unwrap().contains("Bearer"),
            "{answer}"
        );
        let (status, answer, _) = server.get_with(path, Some("wrong")).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(answer["error"], "wrong API token");
    }
    // /hooks, /healthz and /metrics need no token.
    let (status, _, text) = server.get_with("/healthz", None).await;
    assert_eq!((status, text.as_str()), (200, "ok"));
    let (status, _, _) = server.get_with("/metrics", None).await;
    assert_eq!(status, 200);
    let (status, _) = server
        .send(&Delivery::json("push", &sample("push.json")))
        .await;
    assert_eq!(status, 202);
    server.stop().await;
}

#[actix_web::test]
async fn deploy_history_filters_and_orders_newest_first() {
    let server = Harness::builder().without_runner().start().await;
    let mut ids = Vec::new();
    for git_ref in [
        "refs/heads/develop",
        "refs/heads/main",
        "refs/heads/develop",
    ] {
        let mut body = sample("push.json");
        body["ref"] = json!(git_ref);
        let (status, answer) = server.send(&Delivery::json("push", &body)).await;
        assert_eq!(status, 202);
        ids.push(answer["deploy"]["id"].clone());
    }
    let (_, all) = server.get("/api/deploys").await;
    let listed: Vec<_> = all["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].clone())
        .collect();
    assert_eq!(listed, [ids[2].clone(), ids[1].clone(), ids[0].clone()]);
    let (_, staging) = server
        .get("/api/deploys?app=shop&environment=staging&limit=1")
        .await;
    assert_eq!(staging["deploys"].as_array().unwrap().len(), 1);
    assert_eq!(staging["deploys"][0]["id"], ids[2]);
    let (status, answer) = server.get("/api/deploys?limit=many").await;
    assert_eq!(status, 400, "{answer}");
    for missing in ["/api/deploys/999", "/api/deploys/abc", "/api/deploys/0"] {
        let (status, answer) = server.get(missing).await;
        assert_eq!(status, 404, "{missing}: {answer}");
    }
    let (_, apps) = server.get("/api/apps").await;
    let staging_env = apps["apps"][0]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "staging")
        .unwrap()
        .clone();
    assert_eq!(staging_env["branch"], "develop");
    assert_eq!(staging_env["temporary"], false);
    assert_eq!(staging_env["last_deploy"]["id"], ids[2]);
    let (_, _, metrics) = server.get_with("/metrics", None).await;
    assert!(
        metrics.contains("stagehand_deliveries_total{result=\"accepted\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "stagehand_deploys{app=\"shop\",environment=\"staging\",status=\"queued\"} 2"
        ) && metrics.contains("stagehand_queue_depth 3"),
        "{metrics}"
    );
    server.stop().await;
}

#[actix_web::test]
async fn unknown_routes_are_json_404() {
    let server = Harness::builder().without_runner().start().await;
    let (status, answer, _) = server.get_with("/nope", None).await;
    assert_eq!(status, 404);
    assert!(answer["error"].is_string());
    server.stop().await;
}

#[actix_web::test]
async fn healthz_is_503_with_the_reason_when_the_database_is_gone_or_garbage() {
    for damage in ["delete", "overwrite"] {
        let server = Harness::builder().without_runner().start().await;
        let (status, _, text) = server.get_with("/healthz", None).await;
        assert_eq!((status, text.as_str()), (200, "ok"));
        let db = server.database();
        match damage {
            "delete" => std::fs::remove_file(&db).unwrap(),
            _ => std::fs::write(&db, vec![0x5A; 64 * 1024]).unwrap(),
        }
        let (status, answer, _) = server.get_with("/healthz", None).await;
        assert_eq!(status, 503, "{damage}: {answer}");
        let reason = answer["error"].as_str().unwrap();
        assert!(reason.contains("stagehand.db"), "{damage}: {reason}");
        server.stop().await;
    }
}

#[actix_web::test]
async fn metrics_count_temporary_environments_under_their_base_label() {
    let server = Harness::builder().without_runner().start().await;
    for branch in ["feature/a", "feature/b", "feature/b"] {
        let mut body = sample("push.json");
        body["ref"] = json!(format!("refs/heads/{branch}"));
        let (status, answer) = server.send(&Delivery::json("push", &body)).await;
        assert_eq!(status, 202, "{answer}");
    }
    let (_, apps) = server.get("/api/apps").await;
    let temporary = apps["apps"][0]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["temporary"] == true)
        .count();
    assert_eq!(temporary, 2, "{apps}");
    let (_, _, metrics) = server.get_with("/metrics", None).await;
    assert!(
        metrics.contains(
            "stagehand_deploys{app=\"shop\",environment=\"preview\",status=\"queued\"} 3\n"
        ),
        "{metrics}"
    );
    assert!(!metrics.contains("feature"), "{metrics}");
    server.stop().await;
}
