//! "Deploy only what passed": which checks an environment requires, what the forges
//! say about a commit's checks (their events and API answers, read into one shape),
//! and the rule that turns those results into wait / go / skip.
//!
//! Knows no HTTP, store or clock: the gate (`pipeline::checks_gate`) passes in the
//! results it has seen and how long the deploy has waited.

use serde_json::Value;

use super::forge::Forge;

/// `require_checks = true` (every check the forge reports) or a list of names (GitHub
/// check-run names or status contexts, GitLab job names or `pipeline`, Gitea contexts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequiredChecks {
    All,
    Named(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    Pending,
    Success,
    Failure,
}

impl CheckState {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Pending => "pending",
            CheckState::Success => "success",
            CheckState::Failure => "failure",
        }
    }

    pub fn parse(text: &str) -> Option<CheckState> {
        match text {
            "pending" => Some(CheckState::Pending),
            "success" => Some(CheckState::Success),
            "failure" => Some(CheckState::Failure),
            _ => None,
        }
    }
}

/// One named check of one commit, as last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub commit: String,
    pub name: String,
    pub state: CheckState,
}

/// What a waiting deploy does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Wait,
    Go,
    /// Ends the deploy `skipped` with this reason.
    Skip(String),
}

/// The rule. `results` are one commit's, oldest first (a later report of a name
/// replaces an earlier one). A failed required check skips at once; with every
/// required check green the deploy goes; otherwise it waits until `waited_ms` reaches
/// `timeout_ms`. `All` needs at least one reported check and none pending or failed.
pub fn decide(
    required: &RequiredChecks,
    results: &[CheckResult],
    waited_ms: i64,
    timeout_ms: i64,
) -> Verdict {
    let mut latest: Vec<(&str, CheckState)> = Vec::new();
    for r in results {
        match latest.iter_mut().find(|(name, _)| *name == r.name) {
            Some(entry) => entry.1 = r.state,
            None => latest.push((&r.name, r.state)),
        }
    }
    let state_of = |name: &str| latest.iter().find(|(n, _)| *n == name).map(|(_, s)| *s);
    let (failed, missing): (Option<String>, Vec<String>) = match required {
        RequiredChecks::All => (
            latest
                .iter()
                .find(|(_, s)| *s == CheckState::Failure)
                .map(|(n, _)| (*n).to_owned()),
            if latest.is_empty() {
                vec!["any check".to_owned()]
            } else {
                latest
                    .iter()
                    .filter(|(_, s)| *s == CheckState::Pending)
                    .map(|(n, _)| (*n).to_owned())
                    .collect()
            },
        ),
        RequiredChecks::Named(names) => (
            names
                .iter()
                .find(|n| state_of(n) == Some(CheckState::Failure))
                .cloned(),
            names
                .iter()
                .filter(|n| state_of(n) != Some(CheckState::Success))
                .cloned()
                .collect(),
        ),
    };
    if let Some(name) = failed {
        return Verdict::Skip(format!("required check `{name}` failed"));
    }
    if missing.is_empty() {
        return Verdict::Go;
    }
    if waited_ms >= timeout_ms {
        let list = missing
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return Verdict::Skip(format!(
            "checks did not pass within {}: still waiting for {list}",
            human(timeout_ms)
        ));
    }
    Verdict::Wait
}

/// `1h30m`, `30m`, `45s`: how the config writes durations.
fn human(ms: i64) -> String {
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() {
        format!("{ms}ms")
    } else {
        out
    }
}

/// A GitHub check run's or suite's `status` + `conclusion`. Neutral and skipped runs
/// pass (GitHub's own branch protection treats them so).
pub fn github_check(status: &str, conclusion: Option<&str>) -> CheckState {
    if status != "completed" {
        return CheckState::Pending;
    }
    match conclusion {
        Some("success" | "neutral" | "skipped") => CheckState::Success,
        Some(_) => CheckState::Failure,
        None => CheckState::Pending,
    }
}

/// A commit status's `state`: GitHub (`pending`, `success`, `failure`, `error`), Gitea
/// and Forgejo (those and `warning`, which passes, as Gitea's combined status counts it).
pub fn commit_status(state: &str) -> CheckState {
    match state {
        "success" | "warning" => CheckState::Success,
        "failure" | "error" => CheckState::Failure,
        _ => CheckState::Pending,
    }
}

/// A GitLab pipeline's or job's `status`. A skipped job passes; `manual` waits (a
/// person has to start it).
pub fn gitlab_status(status: &str) -> CheckState {
    match status {
        "success" | "skipped" => CheckState::Success,
        "failed" | "canceled" | "canceling" => CheckState::Failure,
        _ => CheckState::Pending,
    }
}

/// Whether `event` (the forge's event header) carries check results; deliveries that
/// do are answered by the gate, not by intake.
pub fn is_check_event(forge: Forge, event: &str) -> bool {
    match forge {
        Forge::Github => matches!(event, "check_run" | "check_suite" | "status"),
        Forge::Gitlab => event == "Pipeline Hook",
        Forge::Gitea | Forge::Forgejo => event == "status",
        Forge::Bitbucket => false,
    }
}

/// The check results a verified delivery carries (empty when it carries none).
pub fn from_event(forge: Forge, event: &str, body: &Value) -> Vec<CheckResult> {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let one = |commit: Option<String>, name: Option<String>, state: CheckState| match (commit, name)
    {
        (Some(commit), Some(name)) => vec![CheckResult {
            commit,
            name,
            state,
        }],
        _ => Vec::new(),
    };
    match (forge, event) {
        (Forge::Github, "check_run") => {
            let run = &body["check_run"];
            one(
                text(run, "head_sha"),
                text(run, "name"),
                github_check(
                    run["status"].as_str().unwrap_or_default(),
                    run["conclusion"].as_str(),
                ),
            )
        }
        (Forge::Github, "check_suite") => {
            let suite = &body["check_suite"];
            one(
                text(suite, "head_sha"),
                text(&suite["app"], "name"),
                github_check(
                    suite["status"].as_str().unwrap_or_default(),
                    suite["conclusion"].as_str(),
                ),
            )
        }
        (Forge::Github | Forge::Gitea | Forge::Forgejo, "status") => one(
            text(body, "sha"),
            text(body, "context"),
            commit_status(body["state"].as_str().unwrap_or_default()),
        ),
        (Forge::Gitlab, "Pipeline Hook") => {
            let pipeline = &body["object_attributes"];
            let Some(sha) = text(pipeline, "sha") else {
                return Vec::new();
            };
            let mut out = one(
                Some(sha.clone()),
                Some("pipeline".to_owned()),
                gitlab_status(pipeline["status"].as_str().unwrap_or_default()),
            );
            // Jobs count once they ended: GitLab's own example has a passed pipeline
            // with a `created` deploy job that never runs; an allowed failure passes,
            // as it does for the pipeline.
            for job in body["builds"].as_array().into_iter().flatten() {
                let state = match gitlab_status(job["status"].as_str().unwrap_or_default()) {
                    CheckState::Pending => continue,
                    CheckState::Failure if job["allow_failure"] == true => CheckState::Success,
                    state => state,
                };
                out.extend(one(Some(sha.clone()), text(job, "name"), state));
            }
            out
        }
        _ => Vec::new(),
    }
}

/// The repository a check event names (`repository.full_name`, GitLab
/// `project.path_with_namespace`), to refuse another repository's results as pushes are.
pub fn event_repository(forge: Forge, body: &Value) -> Option<&str> {
    match forge {
        Forge::Gitlab => body["project"]["path_with_namespace"].as_str(),
        _ => body["repository"]["full_name"].as_str(),
    }
}

/// A forge API's answer about one commit, read into results: GitHub's combined status
/// (`statuses[]`) or check runs (`check_runs[]`), GitLab's commit statuses (a list of
/// `{name, status}`), Gitea's and Forgejo's combined status (`statuses[]` of `{context,
/// status}`, the latest per context).
pub fn from_api(forge: Forge, commit: &str, body: &Value) -> Vec<CheckResult> {
    let result = |name: Option<&str>, state: CheckState| {
        name.map(|name| CheckResult {
            commit: commit.to_owned(),
            name: name.to_owned(),
            state,
        })
    };
    match forge {
        Forge::Github => {
            let statuses = body["statuses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    result(
                        s["context"].as_str(),
                        commit_status(s["state"].as_str().unwrap_or_default()),
                    )
                });
            let runs = body["check_runs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| {
                    result(
                        r["name"].as_str(),
                        github_check(
                            r["status"].as_str().unwrap_or_default(),
                            r["conclusion"].as_str(),
                        ),
                    )
                });
            statuses.chain(runs).collect()
        }
        Forge::Gitlab => body
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                result(
                    s["name"].as_str(),
                    gitlab_status(s["status"].as_str().unwrap_or_default()),
                )
            })
            .collect(),
        Forge::Gitea | Forge::Forgejo => body["statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                result(
                    s["context"].as_str(),
                    commit_status(
                        s["status"]
                            .as_str()
                            .or(s["state"].as_str())
                            .unwrap_or_default(),
                    ),
                )
            })
            .collect(),
        Forge::Bitbucket => Vec::new(),
    }
}

/// The forge API addresses that tell one commit's checks (the polling fallback);
/// `api` has no trailing `/`. Bitbucket has none this reads.
pub fn poll_urls(forge: Forge, api: &str, repository: &str, commit: &str) -> Vec<String> {
    match forge {
        Forge::Github => vec![
            format!("{api}/repos/{repository}/commits/{commit}/status"),
            format!("{api}/repos/{repository}/commits/{commit}/check-runs"),
        ],
        Forge::Gitlab => vec![format!(
            "{api}/projects/{}/repository/commits/{commit}/statuses",
            super::forge::status::percent_encode(repository)
        )],
        // The combined status holds the latest status per context. The list
        // (`…/statuses`) is no substitute: it comes newest first and 30 to a page
        // (`models/git/commit_status.go` `ToOrders`: `created_unix DESC`), and results
        // are kept last-wins, so a context's first `pending` would outlive its `success`.
        Forge::Gitea | Forge::Forgejo => {
            vec![format!("{api}/repos/{repository}/commits/{commit}/status")]
        }
        Forge::Bitbucket => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CheckState::*;

    fn results(list: &[(&str, CheckState)]) -> Vec<CheckResult> {
        list.iter()
            .map(|(name, state)| CheckResult {
                commit: "c".into(),
                name: (*name).into(),
                state: *state,
            })
            .collect()
    }

    fn check(
        required: RequiredChecks,
        seen: &[(&str, CheckState)],
        waited: i64,
        expected: Verdict,
    ) {
        assert_eq!(
            decide(&required, &results(seen), waited, 1_800_000),
            expected,
            "{required:?} {seen:?} after {waited} ms"
        );
    }

    fn named(names: &[&str]) -> RequiredChecks {
        RequiredChecks::Named(names.iter().map(|n| (*n).to_owned()).collect())
    }

    #[test]
    fn the_rule() {
        use RequiredChecks::All;
        check(All, &[], 0, Verdict::Wait);
        check(All, &[("ci", Pending)], 0, Verdict::Wait);
        check(All, &[("ci", Success)], 0, Verdict::Go);
        check(All, &[("ci", Success), ("lint", Pending)], 0, Verdict::Wait);
        check(
            All,
            &[("ci", Success), ("lint", Failure)],
            0,
            Verdict::Skip("required check `lint` failed".into()),
        );
        // A re-run that passes replaces the earlier failure.
        check(All, &[("ci", Failure), ("ci", Success)], 0, Verdict::Go);
        check(
            All,
            &[],
            1_800_000,
            Verdict::Skip("checks did not pass within 30m: still waiting for `any check`".into()),
        );
        check(
            named(&["ci"]),
            &[("ci", Success), ("lint", Failure)],
            0,
            Verdict::Go,
        );
        check(named(&["ci", "lint"]), &[("ci", Success)], 0, Verdict::Wait);
        check(
            named(&["ci", "lint"]),
            &[("ci", Success), ("lint", Failure)],
            0,
            Verdict::Skip("required check `lint` failed".into()),
        );
        check(
            named(&["ci", "lint"]),
            &[("ci", Success), ("lint", Pending)],
            1_800_001,
            Verdict::Skip("checks did not pass within 30m: still waiting for `lint`".into()),
        );
        check(named(&["ci"]), &[("ci", Success)], 9_999_999, Verdict::Go);
    }

    #[test]
    fn poll_addresses() {
        assert_eq!(
            poll_urls(Forge::Github, "http://api", "acme/shop", "abc"),
            [
                "http://api/repos/acme/shop/commits/abc/status",
                "http://api/repos/acme/shop/commits/abc/check-runs"
            ]
        );
        assert_eq!(
            poll_urls(Forge::Gitlab, "http://gl/api/v4", "acme/sub/shop", "abc"),
            ["http://gl/api/v4/projects/acme%2Fsub%2Fshop/repository/commits/abc/statuses"]
        );
        assert_eq!(
            poll_urls(Forge::Forgejo, "http://fj/api/v1", "acme/shop", "abc"),
            ["http://fj/api/v1/repos/acme/shop/commits/abc/status"]
        );
    }

    #[test]
    fn api_answers() {
        let github = serde_json::json!({
            "statuses": [{"context": "ci/jenkins", "state": "success"}],
            "check_runs": [{"name": "test", "status": "completed", "conclusion": "failure"}],
        });
        let seen: Vec<(String, CheckState)> = from_api(Forge::Github, "abc", &github)
            .into_iter()
            .map(|r| (r.name, r.state))
            .collect();
        assert_eq!(
            seen,
            [("ci/jenkins".into(), Success), ("test".into(), Failure)]
        );
        // Gitea's and Forgejo's combined status (`modules/structs/status.go`
        // `CombinedStatus`): each entry's state is in `status`.
        let gitea = serde_json::json!({
            "state": "pending",
            "sha": "abc",
            "total_count": 2,
            "statuses": [
                {"id": 2, "status": "pending", "context": "ci/drone", "description": "", "target_url": ""},
                {"id": 1, "status": "success", "context": "lint", "description": "", "target_url": ""},
            ],
        });
        for forge in [Forge::Gitea, Forge::Forgejo] {
            let seen: Vec<(String, CheckState)> = from_api(forge, "abc", &gitea)
                .into_iter()
                .map(|r| (r.name, r.state))
                .collect();
            assert_eq!(
                seen,
                [("ci/drone".into(), Pending), ("lint".into(), Success)]
            );
        }
        let gitlab = serde_json::json!([{"name": "rspec", "status": "success"}]);
        assert_eq!(from_api(Forge::Gitlab, "abc", &gitlab)[0].name, "rspec");
    }

    fn from_sample(forge: Forge, event: &str, text: &str) -> Vec<(String, String, CheckState)> {
        let body: Value = serde_json::from_str(text).unwrap();
        from_event(forge, event, &body)
            .into_iter()
            .map(|r| (r.commit, r.name, r.state))
            .collect()
    }

    #[test]
    fn the_forges_own_samples() {
        let sha = |s: &str| s.to_owned();
        assert_eq!(
            from_sample(
                Forge::Github,
                "check_run",
                include_str!("../../webhook-samples/check-run.json")
            ),
            [(
                sha("ec26c3e57ca3a959ca5aad62de7213c562f8c821"),
                "Octocoders-linter".into(),
                Success
            )]
        );
        assert_eq!(
            from_sample(
                Forge::Github,
                "check_suite",
                include_str!("../../webhook-samples/check-suite.json")
            ),
            [(
                sha("ec26c3e57ca3a959ca5aad62de7213c562f8c821"),
                "octocoders-linter".into(),
                Success
            )]
        );
        assert_eq!(
            from_sample(
                Forge::Github,
                "status",
                include_str!("../../webhook-samples/status.json")
            ),
            [(
                sha("6113728f27ae82c7b1a177c8d03f9e96e0adf246"),
                "default".into(),
                Success
            )]
        );
        let pipeline = from_sample(
            Forge::Gitlab,
            "Pipeline Hook",
            include_str!("../../webhook-samples/gitlab/pipeline.json"),
        );
        let names: Vec<&str> = pipeline.iter().map(|(_, n, _)| n.as_str()).collect();
        // `staging` is `created` (never ran): not counted.
        assert_eq!(
            names,
            [
                "pipeline",
                "production",
                "test-image",
                "test-build",
                "build-image"
            ]
        );
        assert!(
            pipeline
                .iter()
                .all(|(c, _, s)| c == "bcbb5ec396a2c0f828686f14fac9b80b780504f2" && *s == Success)
        );
        assert_eq!(
            from_sample(
                Forge::Gitea,
                "status",
                include_str!("../../webhook-samples/gitea/status.json")
            ),
            [(
                sha("67b56589a45103f891bdee7c0546e5d40bc02001"),
                "ci/woodpecker".into(),
                Success
            )]
        );
        assert!(is_check_event(Forge::Forgejo, "status"));
        assert!(!is_check_event(Forge::Gitea, "push"));
        assert!(!is_check_event(
            Forge::Bitbucket,
            "repo:commit_status_updated"
        ));
    }

    #[test]
    fn forge_states() {
        assert_eq!(github_check("in_progress", None), Pending);
        assert_eq!(github_check("completed", Some("success")), Success);
        assert_eq!(github_check("completed", Some("skipped")), Success);
        assert_eq!(github_check("completed", Some("timed_out")), Failure);
        assert_eq!(github_check("completed", Some("action_required")), Failure);
        assert_eq!(commit_status("pending"), Pending);
        assert_eq!(commit_status("error"), Failure);
        assert_eq!(commit_status("warning"), Success);
        assert_eq!(gitlab_status("running"), Pending);
        assert_eq!(gitlab_status("manual"), Pending);
        assert_eq!(gitlab_status("failed"), Failure);
        assert_eq!(gitlab_status("success"), Success);
    }
}
