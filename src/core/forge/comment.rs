//! The one comment a pull/merge-request preview keeps on its request: what it says and
//! where each forge's API lists, creates and edits it. Pure: `report::comment` sends.
//!
//! The comment carries a marker stagehand finds it by among the request's comments
//! (`<!-- stagehand preview review-pr-7 -->`; on Bitbucket, whose Markdown shows HTML
//! comments as text, the link-definition form `[//]: # (stagehand preview review-pr-7)`,
//! which renders as nothing), and edits it, so there is one comment per request however
//! often it deploys, and nothing to remember across restarts.
//!
//! - GitLab (merge request notes): `GET|POST {api}/projects/<path>/merge_requests/<iid>/notes`,
//!   `PUT …/notes/<id>`, body `{"body": …}`.
//! - GitHub, Gitea / Forgejo (issue comments, the same API shape): `GET|POST {api}/repos/<owner>/<name>/issues/<n>/comments`,
//!   `PATCH {api}/repos/<owner>/<name>/issues/comments/<id>`, body `{"body": …}`.
//! - Bitbucket Cloud (pull request comments): `GET|POST
//!   {api}/repositories/<workspace>/<slug>/pullrequests/<id>/comments`, `PUT …/comments/<id>`,
//!   body `{"content": {"raw": …}}`; the list is paginated (`{"values": [...], "next":
//!   <url>}`) and keeps deleted comments (`"deleted": true`), which are skipped.

use serde_json::{Value, json};

use super::Forge;
use crate::core::ref_pattern::{
    base_slug, temporary_environment_name, temporary_environment_name_hashed,
};

/// The request number in a preview deploy's ref (`refs/pull/7/head`,
/// `refs/merge-requests/7/head`); `None` for any other ref.
pub fn pull_request_number(git_ref: &str) -> Option<u64> {
    let rest = git_ref
        .strip_prefix("refs/pull/")
        .or_else(|| git_ref.strip_prefix("refs/merge-requests/"))?;
    rest.strip_suffix("/head")?.parse().ok()
}

/// The request a preview deploy belongs to: from the head ref the forge keeps for it
/// where there is one, else from the environment's name. Bitbucket keeps no request
/// refs, so its previews deploy the source branch (`refs/heads/topic`) and only the
/// name says which request it is. `follows_requests`: the deploy's base environment has
/// `pull_requests`, so each of its temporary environments was named from a request's key
/// `pr:<n>`; a name is taken as request `n` only if it is exactly the name (readable or
/// hashed) stagehand gives that key, never by a looser reading of a branch's name.
pub fn request_number(
    git_ref: &str,
    base: &str,
    environment: &str,
    follows_requests: bool,
) -> Option<u64> {
    if let Some(number) = pull_request_number(git_ref) {
        return Some(number);
    }
    if !follows_requests {
        return None;
    }
    let rest = environment.strip_prefix(&format!("{}-pr-", base_slug(base)))?;
    let number: u64 = rest.split('-').next()?.parse().ok()?;
    let key = format!("pr:{number}");
    (temporary_environment_name(base, &key) == environment
        || temporary_environment_name_hashed(base, &key) == environment)
        .then_some(number)
}

/// What stagehand finds its comment by. Environment names are `[a-z0-9-]`, so neither
/// form can be closed early by the name.
pub fn marker(forge: Forge, environment: &str) -> String {
    match forge {
        // Bitbucket's Markdown escapes HTML; an unused link definition renders as nothing.
        Forge::Bitbucket => format!("[//]: # (stagehand preview {environment})"),
        _ => format!("<!-- stagehand preview {environment} -->"),
    }
}

/// What the comment says now. Every value is stagehand's own (environment slugs, hex
/// commits, configured URLs), never payload text.
pub fn body(
    forge: Forge,
    environment: &str,
    status: &str,
    address: Option<&str>,
    commit: Option<&str>,
    log_url: &str,
) -> String {
    let mut text = format!(
        "{}\n**stagehand** preview `{environment}`: **{status}**\n\n",
        marker(forge, environment)
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
    /// The URL of the first page of comments (GET).
    pub fn comments_url(&self) -> String {
        let (api, n) = (self.api_url, self.number);
        match self.forge {
            Forge::Gitlab => format!(
                "{api}/projects/{}/merge_requests/{n}/notes?per_page=100",
                super::status::percent_encode(self.repository)
            ),
            // GitHub pages by 30 unless asked; Gitea and Forgejo answer every comment
            // and ignore the parameter.
            Forge::Github | Forge::Gitea | Forge::Forgejo => format!(
                "{api}/repos/{}/issues/{n}/comments?per_page=100",
                self.repository
            ),
            // Pages of Bitbucket's default size, followed by `next` (see [`next_page`]).
            Forge::Bitbucket => format!(
                "{api}/repositories/{}/pullrequests/{n}/comments",
                self.repository
            ),
        }
    }

    /// How to create the comment: POST to the list URL, without its query.
    pub fn create(&self) -> (Method, String) {
        let url = self.comments_url();
        let url = url.split('?').next().unwrap_or(&url).to_owned();
        (Method::Post, url)
    }

    /// How to edit comment `id`.
    pub fn update(&self, id: u64) -> (Method, String) {
        let (api, n) = (self.api_url, self.number);
        match self.forge {
            Forge::Gitlab => (
                Method::Put,
                format!(
                    "{api}/projects/{}/merge_requests/{n}/notes/{id}",
                    super::status::percent_encode(self.repository)
                ),
            ),
            Forge::Github | Forge::Gitea | Forge::Forgejo => (
                Method::Patch,
                format!("{api}/repos/{}/issues/comments/{id}", self.repository),
            ),
            Forge::Bitbucket => (
                Method::Put,
                format!(
                    "{api}/repositories/{}/pullrequests/{n}/comments/{id}",
                    self.repository
                ),
            ),
        }
    }

    /// The JSON body that creates or edits a comment saying `text`.
    pub fn payload(&self, text: &str) -> Value {
        match self.forge {
            Forge::Bitbucket => json!({ "content": { "raw": text } }),
            _ => json!({ "body": text }),
        }
    }

    /// The id of stagehand's comment for `environment` in one listed page: an array of
    /// `{id, body}` (GitHub, GitLab, Gitea, Forgejo), or Bitbucket's page of `{id,
    /// content: {raw}, deleted}`.
    pub fn find(&self, listed: &Value, environment: &str) -> Option<u64> {
        let marker = marker(self.forge, environment);
        let comments = match self.forge {
            Forge::Bitbucket => listed["values"].as_array()?,
            _ => listed.as_array()?,
        };
        comments.iter().find_map(|c| {
            self.text_of(c)
                .filter(|text| text.contains(&marker))
                .and_then(|_| c["id"].as_u64())
        })
    }

    fn text_of<'v>(&self, comment: &'v Value) -> Option<&'v str> {
        match self.forge {
            // A deleted comment stays listed; editing it would bring nothing back.
            Forge::Bitbucket if comment["deleted"].as_bool() == Some(true) => None,
            Forge::Bitbucket => comment["content"]["raw"].as_str(),
            _ => comment["body"].as_str(),
        }
    }

    /// The next page after `listed`: Bitbucket's `next`, followed only while it stays
    /// under the configured API, since the request carries the token. The other forges'
    /// first page already holds the first 100 comments (Gitea and Forgejo: all).
    pub fn next_page(&self, listed: &Value) -> Option<String> {
        if self.forge != Forge::Bitbucket {
            return None;
        }
        let next = listed["next"].as_str()?;
        let rest = next.strip_prefix(self.api_url)?;
        rest.starts_with('/').then(|| next.to_owned())
    }
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

    /// Bitbucket's previews deploy a branch: the request is read back from the name
    /// stagehand gave its key, and only from exactly that name.
    #[test]
    fn numbers_from_preview_names() {
        let hashed = temporary_environment_name_hashed("review", "pr:7");
        let cases = [
            ("refs/heads/topic", "review", "review-pr-7", true, Some(7)),
            ("refs/heads/topic", "review", &hashed, true, Some(7)),
            (
                "refs/heads/topic",
                "my_review",
                "my-review-pr-12",
                true,
                Some(12),
            ),
            // The head ref wins where the forge keeps one.
            ("refs/pull/9/head", "review", "review-pr-7", true, Some(9)),
            // A branch environment's name is never read as a request.
            ("refs/heads/pr-7", "review", "review-pr-7", false, None),
            ("refs/heads/topic", "review", "review-pr-007", true, None),
            ("refs/heads/topic", "review", "review-pr-7-x", true, None),
            ("refs/heads/topic", "review", "staging", true, None),
            ("refs/heads/topic", "review", "other-pr-7", true, None),
        ];
        for (git_ref, base, environment, follows, number) in cases {
            assert_eq!(
                request_number(git_ref, base, environment, follows),
                number,
                "{git_ref} {base} {environment}"
            );
        }
    }

    fn thread(forge: Forge) -> Thread<'static> {
        Thread {
            forge,
            api_url: "http://api",
            repository: "acme/shop",
            number: 7,
        }
    }

    #[test]
    fn urls_per_forge() {
        let gitlab = thread(Forge::Gitlab);
        assert_eq!(
            gitlab.create(),
            (
                Method::Post,
                "http://api/projects/acme%2Fshop/merge_requests/7/notes".into()
            )
        );
        assert_eq!(
            gitlab.update(5),
            (
                Method::Put,
                "http://api/projects/acme%2Fshop/merge_requests/7/notes/5".into()
            )
        );
        let gitea = thread(Forge::Forgejo);
        assert_eq!(
            gitea.comments_url(),
            "http://api/repos/acme/shop/issues/7/comments?per_page=100"
        );
        assert_eq!(
            gitea.update(5),
            (
                Method::Patch,
                "http://api/repos/acme/shop/issues/comments/5".into()
            )
        );
        assert_eq!(
            thread(Forge::Github).update(5),
            (
                Method::Patch,
                "http://api/repos/acme/shop/issues/comments/5".into()
            )
        );
        let bitbucket = thread(Forge::Bitbucket);
        assert_eq!(
            bitbucket.create(),
            (
                Method::Post,
                "http://api/repositories/acme/shop/pullrequests/7/comments".into()
            )
        );
        assert_eq!(
            bitbucket.update(5),
            (
                Method::Put,
                "http://api/repositories/acme/shop/pullrequests/7/comments/5".into()
            )
        );
        assert_eq!(bitbucket.payload("hi"), json!({"content": {"raw": "hi"}}));
        assert_eq!(gitea.payload("hi"), json!({"body": "hi"}));
    }

    #[test]
    fn finds_its_own_comment_by_marker() {
        let text = body(
            Forge::Gitea,
            "review-pr-7",
            "succeeded",
            Some("https://x"),
            Some(&"a".repeat(40)),
            "https://log",
        );
        assert!(text.starts_with("<!-- stagehand preview review-pr-7 -->"));
        assert!(text.contains("`aaaaaaaaaaaa`") && text.contains("https://x"));
        let other = body(Forge::Gitea, "review-pr-70", "failed", None, None, "l");
        let listed = json!([
            {"id": 1, "body": "LGTM"},
            {"id": 2, "body": other},
            {"id": 3, "body": text},
        ]);
        let gitea = thread(Forge::Gitea);
        assert_eq!(gitea.find(&listed, "review-pr-7"), Some(3));
        assert_eq!(gitea.find(&listed, "review-pr-8"), None);
        assert_eq!(gitea.find(&json!({"message": "404"}), "review-pr-7"), None);
        assert_eq!(gitea.next_page(&json!({"next": "http://api/x"})), None);
    }

    /// Bitbucket's page shape: comments under `values`, text in `content.raw`, deleted
    /// ones still listed; `next` is followed only under the configured API.
    #[test]
    fn finds_its_own_comment_on_bitbucket_pages() {
        let text = body(Forge::Bitbucket, "review-pr-7", "deployed", None, None, "l");
        assert!(text.starts_with("[//]: # (stagehand preview review-pr-7)\n"));
        assert!(!text.contains("<!--"));
        let page = |values: Value, next: Option<&str>| {
            let mut page = json!({"pagelen": 10, "size": 12, "page": 1, "values": values});
            if let Some(next) = next {
                page["next"] = json!(next);
            }
            page
        };
        let bitbucket = thread(Forge::Bitbucket);
        let first = page(
            json!([
                {"id": 11, "deleted": true, "content": {"raw": text, "markup": "markdown"}},
                {"id": 12, "deleted": false, "content": {"raw": "LGTM", "markup": "markdown"}},
            ]),
            Some("http://api/repositories/acme/shop/pullrequests/7/comments?page=2"),
        );
        assert_eq!(bitbucket.find(&first, "review-pr-7"), None);
        assert_eq!(
            bitbucket.next_page(&first).as_deref(),
            Some("http://api/repositories/acme/shop/pullrequests/7/comments?page=2")
        );
        let second = page(
            json!([{"id": 13, "deleted": false, "content": {"raw": text}}]),
            None,
        );
        assert_eq!(bitbucket.find(&second, "review-pr-7"), Some(13));
        assert_eq!(bitbucket.next_page(&second), None);
        // The HTML form of another forge is not Bitbucket's marker.
        let html = body(Forge::Gitlab, "review-pr-7", "deployed", None, None, "l");
        let foreign = page(json!([{"id": 14, "content": {"raw": html}}]), None);
        assert_eq!(bitbucket.find(&foreign, "review-pr-7"), None);
        for elsewhere in [
            "https://evil.example/2.0/x",
            "http://api.evil/x",
            "http://apix/y",
        ] {
            let listed = page(json!([]), Some(elsewhere));
            assert_eq!(bitbucket.next_page(&listed), None, "{elsewhere}");
        }
    }
}
