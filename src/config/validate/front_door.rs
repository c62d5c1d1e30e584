//! The front door's and previews' keys: `[server] front_door` and `trusted_proxies`,
//! an environment's `hosts`, `static` and `expire_after`, and the check that no two
//! environments claim one host. Kept together so the feature's rules sit in one place.

use std::net::{IpAddr, SocketAddr};

use crate::core::hosts::{HostPattern, HostRule, HostTable};
use crate::core::ids::{AppName, EnvironmentName};

use super::super::types::AppConfig;
use super::Validator;

impl Validator<'_> {
    pub(super) fn front_door(&mut self, text: Option<&str>) -> Option<SocketAddr> {
        let text = text?;
        match text.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.problem(
                    "server.front_door",
                    format!("{text:?} is not an address: write IP:PORT, e.g. \"127.0.0.1:8080\""),
                );
                None
            }
        }
    }

    pub(super) fn trusted_proxies(&mut self, list: Option<Vec<String>>) -> Vec<IpAddr> {
        list.unwrap_or_default()
            .into_iter()
            .filter_map(|text| match text.parse() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    self.problem(
                        "server.trusted_proxies",
                        format!("{text:?} is not an IP address"),
                    );
                    None
                }
            })
            .collect()
    }

    pub(super) fn hosts(
        &mut self,
        key: &str,
        list: Option<Vec<String>>,
        temporary: bool,
    ) -> Vec<HostPattern> {
        list.unwrap_or_default()
            .into_iter()
            .filter_map(|text| match HostPattern::parse(&text, temporary) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.problem(&format!("{key}.hosts"), e);
                    None
                }
            })
            .collect()
    }

    /// `expire_after` only means something where previews are made.
    pub(super) fn expire_after(
        &mut self,
        key: &str,
        text: Option<&str>,
        temporary: bool,
    ) -> Option<std::time::Duration> {
        let text = text?;
        let key = format!("{key}.expire_after");
        if !temporary {
            self.problem(&key, "only a branch-pattern environment's previews expire");
            return None;
        }
        match crate::core::duration::parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(&key, e);
                None
            }
        }
    }

    pub(super) fn max_environments(
        &mut self,
        key: &str,
        value: Option<i64>,
        temporary: bool,
    ) -> Option<usize> {
        let value = value?;
        let key = format!("{key}.max_environments");
        if !temporary {
            self.problem(&key, "only a branch-pattern environment makes previews");
            return None;
        }
        Some(self.positive(&key, Some(value), 1))
    }

    pub(super) fn static_dir(&mut self, key: &str, dir: Option<String>) -> Option<String> {
        let dir = dir?.trim_end_matches('/').to_owned();
        self.relative_inside(&format!("{key}.static"), &dir)
            .then_some(dir)
    }

    /// Every app's hosts in one table: two environments (of any apps) that could
    /// claim one host are an error on the second one's `hosts`.
    pub(super) fn host_table<'a>(
        &mut self,
        apps: impl Iterator<Item = &'a AppConfig>,
    ) -> HostTable {
        let rules: Vec<HostRule> = apps
            .flat_map(|app| {
                app.environments.values().flat_map(move |env| {
                    env.hosts.iter().map(move |pattern| HostRule {
                        app: app.name.clone(),
                        environment: env.name.clone(),
                        pattern: pattern.clone(),
                    })
                })
            })
            .collect();
        match HostTable::new(rules) {
            Ok(table) => table,
            Err(conflict) => {
                self.problem(&host_key(&conflict.second_app, &conflict.second), conflict);
                HostTable::default()
            }
        }
    }
}

fn host_key(app: &AppName, env: &EnvironmentName) -> String {
    format!("apps.{app}.environments.{env}.hosts")
}
