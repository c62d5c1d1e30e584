//! `stagehand init`: a commented `stagehand.toml` to start from. The text is built
//! here (pure, tested below); `main.rs` writes it.
//!
//! Comments are aligned one column past the longest line, so a long app name or
//! repository URL never pushes them out of line. `--local` puts the state dir and the
//! environments under the config file's directory, for a first try without root.

/// What `init` writes.
#[derive(Debug, Clone)]
pub struct Starter {
    /// The app's name in the config (`[apps.<app>]`), from `github`'s repository name.
    pub app: String,
    pub repo: String,
    pub github: String,
    /// The variable that holds the webhook secret.
    pub secret_var: String,
    /// State and environments under the config file's directory instead of
    /// `/var/lib/stagehand` and `/srv/<app>`.
    pub local: bool,
}

impl Starter {
    /// The app name and secret variable for `github` (`acme/Blog.Site` → `blog-site`,
    /// `BLOG_SITE_WEBHOOK_SECRET`).
    pub fn new(repo: &str, github: &str, local: bool) -> Starter {
        let app = github
            .rsplit('/')
            .next()
            .unwrap_or("app")
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
        let app = if app.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            app
        } else {
            format!("app{app}")
        };
        let secret_var = format!(
            "{}_WEBHOOK_SECRET",
            app.to_ascii_uppercase().replace('-', "_")
        );
        Starter {
            app,
            repo: repo.to_owned(),
            github: github.to_owned(),
            secret_var,
            local,
        }
    }

    /// The config text.
    pub fn text(&self) -> String {
        let app = &self.app;
        let (state_dir, root, root_note) = if self.local {
            (
                "state".to_owned(),
                format!("srv/{app}"),
                format!("environment E lives in srv/{app}/E, beside this file"),
            )
        } else {
            (
                "/var/lib/stagehand".to_owned(),
                format!("/srv/{app}"),
                format!("environment E lives in /srv/{app}/E"),
            )
        };
        let state_note = if self.local {
            "database, git mirrors, deploy logs (relative paths: to this file)"
        } else {
            "database, git mirrors, deploy logs (`init --local` for a first try without root)"
        };
        let q = |s: &str| format!("{s:?}");
        let lines: Vec<(String, &str)> = vec![
            ("[server]".into(), ""),
            (
                "listen = \"127.0.0.1:9000\"".into(),
                "put nginx with TLS in front (deploy/nginx.conf)",
            ),
            (format!("state_dir = {}", q(&state_dir)), state_note),
            (
                "api_token_env = \"STAGEHAND_API_TOKEN\"".into(),
                "bearer token for the API and the dashboard",
            ),
            (String::new(), ""),
            (format!("[apps.{app}]"), ""),
            (format!("repo = {}", q(&self.repo)), ""),
            (
                format!("github = {}", q(&self.github)),
                "deliveries must come from this repository",
            ),
            (
                format!("secret_env = {}", q(&self.secret_var)),
                "the webhook secret (make one with `stagehand secret`)",
            ),
            (format!("root = {}", q(&root)), &root_note),
            (
                "shared = [\"storage/\", \".env\"]".into(),
                "runtime data kept across releases; linked BEFORE the build, so builds see live data",
            ),
            (
                "# link_after_build = true".into(),
                "link shared after the build instead: builds never see live data",
            ),
            (
                "# export_ignore = true".into(),
                "releases leave out what .gitattributes marks export-ignore, as `git archive` does",
            ),
            (
                "# sync_exclude = [\"*.key\"]".into(),
                "paths in shared/ that `sync` and seeding never copy",
            ),
            (
                "build = []".into(),
                "e.g. [\"composer install --no-dev\", \"npm ci --cache \\\"$STAGEHAND_CACHE_DIR/npm\\\"\", \"npm run build\"]",
            ),
            (
                "after_release = []".into(),
                "e.g. [\"systemctl reload php-fpm\"]",
            ),
            (String::new(), ""),
            (format!("[apps.{app}.environments.production]"), ""),
            ("branch = \"main\"".into(), ""),
            ("protected = true".into(), ""),
            ("env = { APP_ENV = \"production\" }".into(), ""),
            (String::new(), ""),
            (format!("[apps.{app}.environments.staging]"), ""),
            ("branch = \"develop\"".into(), ""),
            ("env = { APP_ENV = \"staging\" }".into(), ""),
            (String::new(), ""),
            (format!("[apps.{app}.environments.preview]"), ""),
            (
                "branch = \"feature/*\"".into(),
                "one temporary environment per feature branch",
            ),
            ("seed_from = \"staging\"".into(), ""),
            ("env = { APP_ENV = \"preview\" }".into(), ""),
        ];
        let width = lines
            .iter()
            .filter(|(_, comment)| !comment.is_empty())
            .map(|(code, _)| code.chars().count())
            .max()
            .unwrap_or(0);
        let mut text = String::from(
            "# stagehand.toml, written by `stagehand init`. Check it with `stagehand check`.\n\
             # Every key is described in deploy/stagehand.example.toml.\n\n",
        );
        for (code, comment) in &lines {
            if comment.is_empty() {
                text.push_str(code);
            } else {
                let pad = width + 2 - code.chars().count();
                text.push_str(&format!("{code}{}# {comment}", " ".repeat(pad)));
            }
            text.push('\n');
        }
        text
    }

    /// What to do next, printed after writing `file`.
    pub fn next_steps(&self, file: &str) -> String {
        let file = shell_quote(file);
        format!(
            "next: export {}=$(stagehand secret) STAGEHAND_API_TOKEN=$(stagehand secret)\n      \
             stagehand check --config {file} && stagehand serve --config {file}",
            self.secret_var
        )
    }
}

/// `text` as one shell word.
fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@".contains(c))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16 item 16: every comment starts in the same column, however long the
    /// app's name.
    #[test]
    fn comments_line_up_with_a_long_app_name() {
        let starter = Starter::new(
            "git@github.com:acme/a-rather-long-application-name.git",
            "acme/A-Rather-Long-Application-Name",
            false,
        );
        assert_eq!(starter.app, "a-rather-long-application-name");
        assert_eq!(
            starter.secret_var,
            "A_RATHER_LONG_APPLICATION_NAME_WEBHOOK_SECRET"
        );
        let text = starter.text();
        let columns: Vec<usize> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains("  # "))
            .map(|l| l.find("  # ").unwrap())
            .collect();
        assert!(columns.len() > 8, "{text}");
        assert!(
            columns.iter().all(|c| *c == columns[0]),
            "{columns:?}\n{text}"
        );
        assert!(text.contains("root = \"/srv/a-rather-long-application-name\""));
        assert!(text.contains("linked BEFORE the build"));
    }

    #[test]
    fn local_keeps_everything_beside_the_file_and_next_steps_name_the_token() {
        let starter = Starter::new("/srv/git/blog.git", "acme/blog", true);
        let text = starter.text();
        assert!(text.contains("state_dir = \"state\""), "{text}");
        assert!(text.contains("root = \"srv/blog\""), "{text}");
        let next = starter.next_steps("my config.toml");
        assert!(
            next.contains("BLOG_WEBHOOK_SECRET=$(stagehand secret)"),
            "{next}"
        );
        assert!(
            next.contains("STAGEHAND_API_TOKEN=$(stagehand secret)"),
            "{next}"
        );
        assert!(next.contains("--config 'my config.toml'"), "{next}");
    }
}
