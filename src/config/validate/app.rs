//! An app's own keys: its webhook secret, forge and repository, where deploys are
//! reported (GitHub Deployments, commit statuses, notify URLs), how its mirror
//! fetches; then its defaults (once) and each environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::core::forge::Forge;
use crate::core::ids::{AppName, EnvironmentName, IdError};
use crate::core::notify::NotifyFormat;
use crate::core::routing::{RouteRule, RoutingTable};
use crate::core::secret::Secret;

use super::super::raw::{Choice, RawApp, RawGithub, RawNotify, RawStatuses};
use super::super::types::{AppConfig, GithubReport, NotifyTarget, StatusReport};
use super::layer::ChecksFrom;
use super::{Validator, one_of};

/// Longest configured environment name: leaves room for `-<branch slug>` in temporary ones.
const MAX_CONFIGURED_ENV_LEN: usize = 40;

impl Validator<'_> {
    pub(super) fn app(&mut self, key: &str, name: AppName, raw: RawApp) -> Option<AppConfig> {
        self.unknown_keys(key, &raw.unknown);
        let secret = self.secret(key, raw.secret_env, raw.secret_file);
        let forge = self
            .choice(&format!("{key}.forge"), "a forge", raw.forge)
            .unwrap_or_default();
        let (github, github_report) = match raw.github {
            None => (None, None),
            Some(RawGithub::Repo(repo)) => (Some(repo), None),
            Some(RawGithub::Table(table)) => {
                let table_key = format!("{key}.github");
                self.unknown_keys(&table_key, &table.unknown);
                if table.token_env.is_some() && forge != Forge::Github {
                    self.problem(
                        &format!("{table_key}.token_env"),
                        format!("reports deploys to GitHub's API, but the app's forge is {forge}"),
                    );
                }
                let api_url = match &table.api_url {
                    Some(url) => {
                        self.http_url(&format!("{table_key}.api_url"), url, true);
                        url.trim_end_matches('/').to_owned()
                    }
                    None => "https://api.github.com".to_owned(),
                };
                let report = table.token_env.and_then(|var| {
                    self.token(&format!("{table_key}.token_env"), &var)
                        .map(|token| GithubReport { token, api_url })
                });
                (Some(table.repo), report)
            }
        };
        let repository = self.repository(key, forge, raw.repository, github);
        let status_report = raw
            .statuses
            .and_then(|statuses| self.status_report(key, forge, statuses));
        if raw.repo.trim().is_empty() {
            self.problem(&format!("{key}.repo"), "is empty");
        }
        let fetch_with = self
            .choice(
                &format!("{key}.fetch_with"),
                "a way to fetch",
                raw.fetch_with,
            )
            .unwrap_or_default();
        let mirror = self
            .choice(&format!("{key}.mirror"), "a kind of mirror", raw.mirror)
            .unwrap_or_default();
        let repo_token = raw
            .token_env
            .and_then(|var| self.token(&format!("{key}.token_env"), &var));
        let notify = raw
            .notify
            .unwrap_or_default()
            .into_iter()
            .filter_map(|entry| self.notify(key, entry))
            .collect();
        let max_log_size = self.size(&format!("{key}.max_log_size"), raw.max_log_size.as_deref());
        let checks = ChecksFrom {
            forge,
            status_api: status_report.is_some(),
        };
        let defaults = self.layer(key, &raw.defaults, checks);
        if raw.environments.is_empty() {
            self.problem(
                &format!("{key}.environments"),
                "the app has no environments: add [apps.<app>.environments.<name>] with a branch",
            );
        }
        let env_names: Vec<String> = raw.environments.keys().cloned().collect();
        let mut environments = BTreeMap::new();
        for (env_name, raw_env) in raw.environments {
            let env_key = format!("{key}.environments.{env_name}");
            let parsed = EnvironmentName::parse(&env_name).and_then(|n| {
                if n.as_str().len() > MAX_CONFIGURED_ENV_LEN {
                    Err(IdError::BadName {
                        kind: "environment",
                        value: env_name.clone(),
                        max: MAX_CONFIGURED_ENV_LEN,
                    })
                } else {
                    Ok(n)
                }
            });
            match parsed {
                Ok(n) => {
                    if let Some(env) = self.environment(
                        &env_key,
                        n.clone(),
                        &defaults,
                        raw_env,
                        &env_names,
                        checks,
                    ) {
                        environments.insert(n, env);
                    }
                }
                Err(e) => self.problem(&env_key, e),
            }
        }
        let rules = environments
            .values()
            .map(|e| RouteRule {
                environment: e.name.clone(),
                source: e.source.clone(),
            })
            .collect();
        let routing = match RoutingTable::new(rules) {
            Ok(table) => table,
            Err(conflict) => {
                self.problem(&format!("{key}.environments"), conflict);
                return None;
            }
        };
        Some(AppConfig {
            name,
            max_log_size,
            repo: raw.repo,
            forge,
            repository,
            github_report,
            status_report,
            secret,
            root: self.path(raw.root),
            ssh_key: raw.ssh_key.map(|p| self.path(p)),
            repo_token,
            fetch_with,
            mirror,
            sync: raw.sync.unwrap_or_default(),
            notify,
            environments,
            routing,
        })
    }

    /// The value of the variable a `token_env` names; unset or empty is a problem.
    fn token(&mut self, key: &str, var: &str) -> Option<Secret> {
        match self.inputs.env.get(var) {
            Some(token) if !token.is_empty() => Some(Secret::new(token.clone())),
            _ => {
                self.problem(
                    key,
                    format!("environment variable {var} is not set or empty"),
                );
                None
            }
        }
    }

    fn secret(
        &mut self,
        key: &str,
        secret_env: Option<String>,
        secret_file: Option<PathBuf>,
    ) -> Secret {
        let value = match (secret_env, secret_file) {
            (Some(_), Some(_)) => {
                self.problem(key, "set secret_env or secret_file, not both");
                None
            }
            (None, None) => {
                self.problem(
                    key,
                    "no webhook secret: set secret_env or secret_file (the webhook never runs unsigned)",
                );
                None
            }
            (Some(var), None) => match self.inputs.env.get(&var).map(|v| v.trim()) {
                Some(v) if !v.is_empty() => Some(v.to_owned()),
                _ => {
                    self.problem(
                        &format!("{key}.secret_env"),
                        format!("environment variable {var} is not set or empty"),
                    );
                    None
                }
            },
            (None, Some(path)) => {
                let path = self.path(path);
                let read = self.inputs.secret_files.get(&path).cloned();
                match read {
                    Some(Ok(text)) if !text.trim().is_empty() => Some(text.trim().to_owned()),
                    Some(Ok(_)) => {
                        self.problem(
                            &format!("{key}.secret_file"),
                            format!("{} is empty", path.display()),
                        );
                        None
                    }
                    Some(Err(e)) => {
                        self.problem(
                            &format!("{key}.secret_file"),
                            format!("cannot read {}: {e}", path.display()),
                        );
                        None
                    }
                    // Loading reads every secret_file; a path it missed is a bug, said plainly.
                    None => {
                        self.problem(
                            &format!("{key}.secret_file"),
                            format!("{} was not read while loading", path.display()),
                        );
                        None
                    }
                }
            }
        };
        Secret::new(value.unwrap_or_default())
    }

    fn status_report(&mut self, key: &str, forge: Forge, raw: RawStatuses) -> Option<StatusReport> {
        let key = format!("{key}.statuses");
        self.unknown_keys(&key, &raw.unknown);
        if forge == Forge::Github {
            self.problem(
                &key,
                "GitHub reports as Deployments: use github = { repo, token_env } instead",
            );
            return None;
        }
        let api_url = raw
            .api_url
            .or_else(|| crate::core::forge::status::default_api_url(forge).map(str::to_owned));
        let api_url = match api_url {
            Some(url) => {
                if !self.http_url(&format!("{key}.api_url"), &url, true) {
                    return None;
                }
                url.trim_end_matches('/').to_owned()
            }
            None => {
                self.problem(
                    &format!("{key}.api_url"),
                    format!("is required for {forge}: the API's base, e.g. https://git.example.com/api/v1"),
                );
                return None;
            }
        };
        let token = self.token(&format!("{key}.token_env"), &raw.token_env)?;
        Some(StatusReport { token, api_url })
    }

    /// `repository`, or its older name `github`; both may be given if they agree.
    fn repository(
        &mut self,
        key: &str,
        forge: Forge,
        repository: Option<String>,
        github: Option<String>,
    ) -> String {
        let trimmed = |s: Option<String>| s.map(|s| s.trim().to_owned());
        let chosen = match (trimmed(repository), trimmed(github)) {
            (Some(r), Some(g)) if !r.eq_ignore_ascii_case(&g) => {
                self.problem(
                    &format!("{key}.repository"),
                    format!("{r:?} disagrees with {key}.github = {g:?}: keep one of them"),
                );
                r
            }
            (Some(r), _) | (None, Some(r)) => r,
            (None, None) => {
                self.problem(
                    &format!("{key}.repository"),
                    "is required: the repository's full name on the forge (\"owner/name\")",
                );
                return String::new();
            }
        };
        if !forge.valid_repository(&chosen) {
            let shape = if forge == Forge::Gitlab {
                "group/name (or group/subgroup/name)"
            } else {
                "owner/name"
            };
            self.problem(
                &format!("{key}.repository"),
                format!("{chosen:?} is not {shape}"),
            );
        }
        chosen
    }

    fn notify(&mut self, key: &str, entry: RawNotify) -> Option<NotifyTarget> {
        let key = format!("{key}.notify");
        let (url, format) = match entry {
            RawNotify::Url(url) => (url, None),
            RawNotify::Table(table) => {
                self.unknown_keys(&key, &table.unknown);
                (table.url, table.format)
            }
        };
        let format = match format {
            None => NotifyFormat::Json,
            Some(Choice::Valid(format)) => format,
            Some(Choice::Invalid { text, allowed }) => {
                self.problem(
                    &key,
                    format!("format {text:?} is not one of {}", one_of(allowed)),
                );
                return None;
            }
        };
        self.http_url(&key, &url, true)
            .then_some(NotifyTarget { url, format })
    }
}
