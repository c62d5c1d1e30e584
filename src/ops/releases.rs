//! The releases on disk of one environment, newest first, with the live one and the
//! rollback target marked and the deploy that built each. The directory is read with
//! the store's gate let go; the store is asked about the names afterwards.

use super::{Ops, OpsError, addressed, blocking};
use crate::api_types::ReleaseView;
use crate::core::deploy::DeployStatus;
use crate::core::release::previous_release;
use crate::pipeline::releases;
use crate::store::StoreError;

/// What `releases/` holds: release ids oldest first, the live one, each one's commit.
struct OnDisk {
    names: Vec<String>,
    live: Option<String>,
    commits: Vec<Option<String>>,
}

pub async fn list(ops: &Ops, app: String, env: String) -> Result<Vec<ReleaseView>, OpsError> {
    let config = ops.config.get();
    let (app_name, env_name, dir) = ops
        .store
        .run(move |store| {
            Ok::<_, StoreError>(
                addressed(store, &config, &app, &env)
                    .map(|a| (a.app.name.clone(), a.name().clone(), a.dir())),
            )
        })
        .await??;
    let on_disk = blocking(move || {
        // A missing directory is an empty list (`releases::list`); anything else
        // (permissions, I/O) is the server's problem, not a missing environment.
        let mut names = releases::list(&dir)
            .map_err(|e| OpsError::Internal(format!("cannot list releases: {e}")))?;
        names.sort();
        let live = dir.live().map(|l| l.release);
        let commits = names
            .iter()
            .map(|name| {
                std::fs::read_to_string(dir.releases().join(name).join("REVISION"))
                    .map(|c| c.trim().to_owned())
                    .ok()
            })
            .collect();
        Ok::<_, OpsError>(OnDisk {
            names,
            live,
            commits,
        })
    })
    .await??;
    let OnDisk {
        names,
        live,
        commits,
    } = on_disk;
    let previous = live
        .as_deref()
        .and_then(|l| previous_release(&names, l))
        .map(str::to_owned);
    let names2 = names.clone();
    let built = ops
        .store
        .run(move |store| {
            names2
                .iter()
                .map(|name| store.release_deploy(&app_name, &env_name, name))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    let mut list = Vec::new();
    for ((name, commit), built) in names.iter().zip(commits).zip(built).rev() {
        let status = built.as_ref().map(|d| d.status);
        list.push(ReleaseView {
            release: name.clone(),
            commit,
            live: live.as_deref() == Some(name.as_str()),
            previous: previous.as_deref() == Some(name.as_str()),
            deploy: built.as_ref().map(|d| d.id),
            status,
            failed: matches!(
                status,
                Some(DeployStatus::Failed | DeployStatus::RolledBack)
            ),
            message: built.as_ref().and_then(|d| d.message.clone()),
            author: built.as_ref().and_then(|d| d.author.clone()),
        });
    }
    Ok(list)
}
