//! The one comment a pull/merge-request preview keeps on its request: what it says and
//! where each forge's API lists, creates and edits it. Pure: `report_comment` sends.
//!
//! The comment carries an invisible marker (`<!-- stagehand preview review-pr-7 -->`);
//! stagehand finds its comment by that marker in the request's comments and edits it,
//! so there is one comment per request however often it deploys, and nothing to
//! remember across restarts.
//!
//! - GitLab (merge request notes): `GET|POST {api}/projects/<path>/merge_requests/<iid>/notes`,
//!   `PUT …/notes/<id>`, body `{"body": …}`.
//! - GitHub, Gitea / Forgejo (issue comments, the same API shape): `GET|POST {api}/repos/<owner>/<name>/issues/<n>/comments`,
//!   `PATCH {api}/repos/<owner>/<name>/issues/comments/<id>`, body `{"body": …}`.

use serde_json::Value;

use super::Forge;

/// The request number in a preview deploy's ref (`refs/pull/7/head`,
/// `refs/merge-requests/7/head`); `None` for any other ref.
pub fn pull_request_number(git_ref: &str) -> Option<u64> {
    let rest = git_ref
        .strip_prefix("refs/pull/")
        .or_else(|| git_ref.strip_prefix("refs/merge-requests/"))?;
    rest.strip_suffix("/head")?.parse().ok()
}

pub fn marker(environment: &str) -> String {
    format!("<!-- stagehand preview {environment} -->")
}

/// What the comment says now. Every value is stagehand's own (environment slugs, hex
/// commits, configured URLs), never payload text.
pub fn body(
    environment: &str,
    status: &str,
    address: Option<&str>,
    commit: Option<&str>,
    log_url: &str,
) -> String {
    let mut text = format!(
        "{}\n**stagehand** preview `{environment}`: **{status}**\n\n",
        marker(environment)
    );
    if let Some(address) = address {
        text.push_str(&format!("- address: {address}\n"));
    }
    if let Some(commit) = commit {
        let short = commit.get(..12).unwrap_or(commit);
        text.push_str(&format!("- commit: `{short}`\n"));
    }
    text.push_str(&format!("- log: {log_url}\n"));
    text
}

/// Where the request's comments are, for one forge.
pub struct Thread<'a> {
    pub forge: Forge,
    /// Without a trailing `/`.
    pub api_url: &'a str,
    pub repository: &'a str,
    pub number: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Patch,
}

impl Thread<'_> {
    /// The URL that lists (GET) and creates (POST) comments; `None` where stagehand
    /// keeps no comment (Bitbucket has no previews yet).
    pub fn comments_url(&self) -> Option<String> {
        let (api, n) = (self.api_url, self.number);
        match self.forge {
            Forge::Gitlab => Some(format!(
                "{api}/projects/{}/merge_requests/{n}/notes?per_page=100",
                super::status::percent_encode(self.repository)
            )),
            Forge::Github | Forge::Gitea | Forge::Forgejo => Some(format!(
                "{api}/repos/{}/issues/{n}/comments",
                self.repository
            )),
            Forge::Bitbucket => None,
        }
    }

    /// How to create the comment: POST to the list URL, without its query.
    pub fn create(&self) -> Option<(Method, String)> {
        let url = self.comments_url()?;
        let url = url.split('?').next().unwrap_or(&url).to_owned();
        Some((Method::Post, url))
    }

    /// How to edit comment `id`.
    pub fn update(&self, id: u64) -> Option<(Method, String)> {
        let (api, n) = (self.api_url, self.number);
        match self.forge {
            Forge::Gitlab => Some((
                Method::Put,
                format!(
                    "{api}/projects/{}/merge_requests/{n}/notes/{id}",
                    super::status::percent_encode(self.repository)
                ),
            )),
            Forge::Github | Forge::Gitea | Forge::Forgejo => Some((
                Method::Patch,
                format!("{api}/repos/{}/issues/comments/{id}", self.repository),
            )),
            Forge::Bitbucket => None,
        }
    }
}

/// The id of stagehand's comment for `environment` in a listed page of comments (both
/// forges answer an array of objects with `id` and `body`).
pub fn find(listed: &Value, environment: &str) -> Option<u64> {
    let marker = marker(environment);
    listed.as_array()?.iter().find_map(|c| {
        c["body"]
            .as_str()
            .filter(|b| b.contains(&marker))
            .and_then(|_| c["id"].as_u64())
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn numbers_from_head_refs() {
        let cases = [
            ("refs/pull/7/head", Some(7)),
            ("refs/merge-requests/12/head", Some(12)),
            ("refs/pull/7/merge", None),
            ("refs/heads/pr-7", None),
            ("refs/pull/x/head", None),
        ];
        for (git_ref, number) in cases {
            assert_eq!(pull_request_number(git_ref), number, "{git_ref}");
        }
    }

    #[test]
    fn urls_per_forge() {
        let thread = |forge| Thread {
            forge,
            api_url: "http://api",
            repository: "acme/shop",
            number: 7,
        };
        let gitlab = thread(Forge::Gitlab);
        assert_eq!(
            gitlab.create(),
            Some((
                Method::Post,
                "http://api/projects/acme%2Fshop/merge_requests/7/notes".into()
            ))
        );
        assert_eq!(
            gitlab.update(5),
            Some((
                Method::Put,
                "http://api/projects/acme%2Fshop/merge_requests/7/notes/5".into()
            ))
        );
        let gitea = thread(Forge::Forgejo);
        assert_eq!(
            gitea.comments_url().as_deref(),
            Some("http://api/repos/acme/shop/issues/7/comments")
        );
        assert_eq!(
            gitea.update(5),
            Some((
                Method::Patch,
                "http://api/repos/acme/shop/issues/comments/5".into()
            ))
        );
        assert_eq!(
            thread(Forge::Github).update(5),
            Some((
                Method::Patch,
                "http://api/repos/acme/shop/issues/comments/5".into()
            ))
        );
        assert_eq!(thread(Forge::Bitbucket).create(), None);
    }

    #[test]
    fn finds_its_own_comment_by_marker() {
        let text = body(
            "review-pr-7",
            "succeeded",
            Some("https://x"),
            Some(&"a".repeat(40)),
            "https://log",
        );
        assert!(text.starts_with("<!-- stagehand preview review-pr-7 -->"));
        assert!(text.contains("`aaaaaaaaaaaa`") && text.contains("https://x"));
        let listed = json!([
            {"id": 1, "body": "LGTM"},
            {"id": 2, "body": body("review-pr-70", "failed", None, None, "l")},
            {"id": 3, "body": text},
        ]);
        assert_eq!(find(&listed, "review-pr-7"), Some(3));
        assert_eq!(find(&listed, "review-pr-8"), None);
        assert_eq!(find(&json!({"message": "404"}), "review-pr-7"), None);
    }
}
