//! Deliveries: each verified webhook delivery is recorded once with what it led to
//! (a deploy, a ping, or why it was ignored), so a redelivery finds the first answer
//! instead of acting twice; and the hooks that pinged, per app.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::core::deploy::Deploy;
use crate::core::ids::{AppName, DeployId, EnvironmentName};
use crate::core::time::UnixMillis;

use super::{NewDeploy, Store, StoreError, deploys, lifecycle, temporary_environments};

/// A delivery that passed its signature check.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub app: AppName,
    pub delivery_id: String,
    /// Empty when GitHub did not send `X-GitHub-Hook-ID`.
    pub hook_id: String,
    pub event: String,
    pub received_at: UnixMillis,
}

/// What a verified delivery asks of the store.
#[derive(Debug, Clone)]
pub enum Intent {
    Ping,
    Ignore {
        reason: String,
    },
    Deploy(NewDeploy),
    /// Tear down the temporary environment of `branch`, if it has one.
    Teardown {
        base: EnvironmentName,
        branch: String,
        git_ref: String,
    },
}

#[derive(Debug, Clone)]
pub enum Recorded {
    Ping {
        duplicate: bool,
    },
    Ignored {
        reason: String,
        duplicate: bool,
    },
    Deploy {
        deploy: Box<Deploy>,
        duplicate: bool,
    },
}

impl Store {
    /// Records a delivery and what it asks for in one transaction of its own: a
    /// redelivery (same app, hook id and delivery id) returns what the first one
    /// recorded and does nothing. Webhook intake goes through
    /// [`Store::record_delivery_grouped`] instead, which commits many at once.
    pub fn record_delivery(
        &self,
        delivery: &NewDelivery,
        intent: Intent,
    ) -> Result<Recorded, StoreError> {
        record_alone(&mut self.lock(), delivery, intent)
    }

    /// [`Store::record_delivery`] through the group-committing writer thread
    /// (`writer.rs`): answered once the transaction holding this delivery, and whatever
    /// else was waiting with it, has committed. Never blocks the caller's thread.
    pub async fn record_delivery_grouped(
        &self,
        delivery: NewDelivery,
        intent: Intent,
    ) -> Result<Recorded, StoreError> {
        self.writer.record(delivery, intent).await
    }

    /// Deletes delivery records received before `before`; returns how many.
    pub fn prune_deliveries(&self, before: UnixMillis) -> Result<usize, StoreError> {
        Ok(self
            .lock()
            .execute("DELETE FROM deliveries WHERE received_at < ?1", [before.0])?)
    }

    pub fn hook_ids(&self, app: &AppName) -> Result<Vec<String>, StoreError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare_cached("SELECT hook_id FROM hooks WHERE app = ?1 ORDER BY hook_id")?;
        let rows = stmt
            .query_map([app.as_str()], |r| r.get("hook_id"))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

/// A delivery recorded in a transaction of its own.
pub(super) fn record_alone(
    conn: &mut Connection,
    delivery: &NewDelivery,
    intent: Intent,
) -> Result<Recorded, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let recorded = record(&tx, delivery, intent)?;
    tx.commit()?;
    Ok(recorded)
}

/// A delivery and what it asks for, written inside `tx` (committed by the caller, alone
/// or with others): a redelivery finds what the first one recorded and writes nothing.
pub(super) fn record(
    tx: &Transaction<'_>,
    delivery: &NewDelivery,
    intent: Intent,
) -> Result<Recorded, StoreError> {
    let existing = tx.prepare_cached("SELECT outcome, detail, deploy_id FROM deliveries WHERE app = ?1 AND hook_id = ?2 AND delivery_id = ?3")?.query_row(params![delivery.app.as_str(), delivery.hook_id, delivery.delivery_id],
            |r| Ok((r.get::<_, String>("outcome")?, r.get::<_, Option<String>>("detail")?, r.get::<_, Option<i64>>("deploy_id")?)),
        )
        .optional()?;
    if let Some((outcome, detail, deploy_id)) = existing {
        return match (outcome.as_str(), deploy_id) {
            ("deploy", Some(id)) => Ok(Recorded::Deploy {
                deploy: Box::new(deploys::load_deploy(tx, DeployId(id))?.ok_or_else(|| {
                    StoreError::Corrupt(format!("delivery points at missing deploy {id}"))
                })?),
                duplicate: true,
            }),
            ("ping", _) => Ok(Recorded::Ping { duplicate: true }),
            _ => Ok(Recorded::Ignored {
                reason: detail.unwrap_or_default(),
                duplicate: true,
            }),
        };
    }
    let recorded = match intent {
        Intent::Ping => {
            tx.prepare_cached(
                "INSERT INTO hooks (app, hook_id, last_ping_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (app, hook_id) DO UPDATE SET last_ping_at = excluded.last_ping_at",
            )?
            .execute(params![
                delivery.app.as_str(),
                delivery.hook_id,
                delivery.received_at.0
            ])?;
            Recorded::Ping { duplicate: false }
        }
        Intent::Ignore { reason } => Recorded::Ignored {
            reason,
            duplicate: false,
        },
        Intent::Deploy(new)
            if let Some(reason) = lifecycle::over_limit(tx, &delivery.app, &new.target)? =>
        {
            Recorded::Ignored {
                reason,
                duplicate: false,
            }
        }
        Intent::Deploy(new) => {
            let deploy = deploys::insert_deploy(tx, &delivery.app, new, delivery.received_at)?;
            Recorded::Deploy {
                deploy: Box::new(deploy),
                duplicate: false,
            }
        }
        Intent::Teardown {
            base,
            branch,
            git_ref,
        } => temporary_environments::teardown(
            tx,
            &delivery.app,
            &base,
            &branch,
            git_ref,
            delivery.received_at,
        )?,
    };
    let (outcome, detail, deploy_id) = match &recorded {
        Recorded::Ping { .. } => ("ping", None, None),
        Recorded::Ignored { reason, .. } => ("ignored", Some(reason.as_str()), None),
        Recorded::Deploy { deploy, .. } => ("deploy", None, Some(deploy.id.0)),
    };
    tx.prepare_cached("INSERT INTO deliveries (app, delivery_id, hook_id, event, outcome, detail, deploy_id, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?.execute(params![
            delivery.app.as_str(),
            delivery.delivery_id,
            delivery.hook_id,
            delivery.event,
            outcome,
            detail,
            deploy_id,
            delivery.received_at.0
        ],
    )?;
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{delivery, push, store};
    use super::*;

    #[test]
    fn redeliveries_find_the_first_record_until_it_is_pruned() {
        let (_dir, store) = store();
        let first = store
            .record_delivery(&delivery("d1", 1_000), push("staging"))
            .unwrap();
        let Recorded::Deploy {
            deploy,
            duplicate: false,
        } = first
        else {
            panic!("{first:?}")
        };
        let again = store
            .record_delivery(&delivery("d1", 2_000), push("staging"))
            .unwrap();
        assert!(
            matches!(&again, Recorded::Deploy { deploy: d, duplicate: true } if d.id == deploy.id)
        );
        assert_eq!(store.prune_deliveries(UnixMillis(1_000)).unwrap(), 0);
        assert_eq!(store.prune_deliveries(UnixMillis(1_001)).unwrap(), 1);
        let after = store
            .record_delivery(&delivery("d1", 3_000), push("staging"))
            .unwrap();
        assert!(matches!(
            after,
            Recorded::Deploy {
                duplicate: false,
                ..
            }
        ));
        // Deploy history survives the pruning of deliveries.
        assert!(store.deploy(deploy.id).unwrap().is_some());
    }
}
