//! [`TenantDirectory::apply`] (module docs, Applying a sync): the bulk records first, then the
//! numbering transaction until it commits or has lost [`MAX_SEQ_ATTEMPTS`] times, then the
//! replaced department set dropped.
//!
//! [`TenantDirectory::apply`]: koogallery::directory::TenantDirectory::apply

use chrono::{DateTime, Utc};
use koogallery::{
    StoreError,
    directory::{Applied, Department, DirectoryChange, EventBody, TenantKey},
};

use super::{
    DynamoDirectory, FIXED_ACTIONS, MAX_SEQ_ATTEMPTS,
    departments::{Edit, NewSet},
    keys::*,
    numbering::State,
    records::last_wins,
};
use crate::dynamo::sdk::{MAX_TRANSACTION_ITEMS, backoff};

/// What one attempt at the numbering transaction came to.
enum Attempt {
    /// Committed, or nothing to send: what was numbered, the state it was built on, and whether
    /// a singleOrgSync replaced a set that holds departments (to be dropped).
    Done {
        applied: Applied,
        state: State,
        edited: bool,
    },
    /// A concurrent apply won (the cancellation codes): read again.
    Contended(String),
}

impl DynamoDirectory {
    pub(super) async fn apply_change(
        &self,
        key: &TenantKey,
        change: &DirectoryChange,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let events = &change.events();
        if events.len() + FIXED_ACTIONS > MAX_TRANSACTION_ITEMS {
            // Retrying cannot help, so this is not reported as `Unavailable`.
            return Err(StoreError::Corrupt(format!(
                "{} with {} events exceeds one DynamoDB transaction ({MAX_TRANSACTION_ITEMS} actions including {FIXED_ACTIONS} for the records)",
                change.name(),
                events.len()
            ).into()));
        }
        let pk = tenant_pk(key);
        let replacement = self.before_numbering(&pk, change, events, now).await?;

        let mut attempt = 0;
        let (applied, state, edited) = loop {
            let contended = match self
                .attempt(key, &pk, change, events, now, replacement.as_ref())
                .await?
            {
                Attempt::Done {
                    applied,
                    state,
                    edited,
                } => break (applied, state, edited),
                Attempt::Contended(codes) => Some(codes),
            };
            attempt += 1;
            if attempt >= MAX_SEQ_ATTEMPTS {
                tracing::warn!(
                    pk = %pk, change = change.name(), codes = ?contended,
                    "directory sync still contended after {attempt} attempts"
                );
                if let Some(set) = &replacement {
                    self.discard(&pk, set).await;
                }
                return Err(StoreError::Conflict);
            }
            tokio::time::sleep(backoff(attempt)).await;
        };

        if replacement.is_some() || edited {
            // Step 3, best effort: the previous set is no longer read. An allOrgSync never read
            // it; a singleOrgSync that found it empty has nothing to drop (`edited` is false).
            self.drop_set(&pk, state.set.as_ref()).await;
        }
        Ok(applied)
    }

    /// Step 1 (module docs). An allOrgSync's new set does not depend on what is stored: built
    /// (and written ahead, if it does not fit in the transaction) once, whatever the attempts.
    /// Any other change writes its bulk records.
    async fn before_numbering(
        &self,
        pk: &str,
        change: &DirectoryChange,
        events: &[EventBody],
        now: DateTime<Utc>,
    ) -> Result<Option<NewSet>, StoreError> {
        match change {
            DirectoryChange::ReplaceDepartments(all) => {
                let mut all: Vec<Department> = last_wins(all, |d| &d.org_code)
                    .into_iter()
                    .cloned()
                    .collect();
                all.sort_by(|a, b| a.org_code.cmp(&b.org_code));
                let set = self.new_set(pk, &all, events, now)?;
                self.write_ahead(&set).await?;
                Ok(Some(set))
            }
            _ => {
                self.write_records(pk, change).await?;
                Ok(None)
            }
        }
    }

    /// One attempt at step 2: the state read (`ORGSET` too for a department change), a
    /// singleOrgSync's new set built on it, the numbering transaction sent. A set written ahead
    /// for a transaction that lost is discarded.
    async fn attempt(
        &self,
        key: &TenantKey,
        pk: &str,
        change: &DirectoryChange,
        events: &[EventBody],
        now: DateTime<Utc>,
        replacement: Option<&NewSet>,
    ) -> Result<Attempt, StoreError> {
        let departments = matches!(
            change,
            DirectoryChange::PutDepartment(_)
                | DirectoryChange::DeleteDepartment { .. }
                | DirectoryChange::ReplaceDepartments(_)
        );
        let state = self.read_state(pk, departments).await?;
        // A singleOrgSync's new set is built from the set read, on every attempt.
        let edited = match change {
            DirectoryChange::PutDepartment(_) | DirectoryChange::DeleteDepartment { .. } => {
                match self.edit_set(pk, &state, change, events, now).await? {
                    Edit::Stale => {
                        return Ok(Attempt::Contended(
                            "a chunk of the set read is gone".to_owned(),
                        ));
                    }
                    Edit::Unchanged => None,
                    Edit::Changed {
                        set,
                        replaced_empty,
                    } => {
                        self.write_ahead(&set).await?;
                        Some((set, replaced_empty))
                    }
                }
            }
            _ => None,
        };
        let set = replacement.or(edited.as_ref().map(|(set, _)| set));
        let planned = self.plan(key, change, events, now, &state, set)?;
        let applied = planned.applied;
        if planned.items.is_empty() {
            // Nothing to number and no record to write (an empty authSync).
            return Ok(Attempt::Done {
                applied,
                state,
                edited: false,
            });
        }
        match self.transact(pk, planned).await? {
            None => Ok(Attempt::Done {
                applied,
                state,
                edited: edited.is_some_and(|(_, replaced_empty)| !replaced_empty),
            }),
            Some(codes) => {
                if let Some((set, _)) = &edited {
                    self.discard(pk, set).await;
                }
                Ok(Attempt::Contended(codes))
            }
        }
    }
}
