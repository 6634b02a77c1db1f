//! The department set (module docs, Items): a generation's departments in chunks, `ORGSET`
//! naming the current one; read whole, replaced copy-on-write, the replaced set dropped (step 3).

use chrono::{DateTime, Utc};
use koogallery::{
    StoreError,
    directory::{Department, DirectoryChange, DirectoryEvent, EventBody, TenantKey, record},
};

use super::{
    CHUNKS_PER_GET, DynamoDirectory, FIXED_ACTIONS, MAX_CHUNK_BYTES, MAX_DEPARTMENT_READS,
    MAX_INLINE_BYTES,
    items::{
        check_size, decode_chunk_item, decode_department_item, decode_orgset_item, event_item,
        put_request, record_item,
    },
    keys::*,
    numbering::State,
    requests::SkRange,
};
use crate::dynamo::{
    attr::{Item, item_bytes, key_from, key_of},
    sdk::{MAX_TRANSACTION_ITEMS, delete_request},
};

/// What an `ORGSET` item names: the current department set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SetRef {
    pub(super) generation: String,
    /// `Some(n)`: `ORGCHUNK#{generation}#0000` … `n - 1`. `None`: `ORG#{generation}#…` items, one
    /// per department (a release before the chunks wrote them).
    pub(super) chunks: Option<u32>,
}

pub(super) fn generation_of(set: Option<&SetRef>) -> &str {
    set.map_or(FIRST_GENERATION, |s| s.generation.as_str())
}

/// A department set written under a new generation, which the numbering transaction flips
/// `ORGSET` to.
pub(super) struct NewSet {
    pub(super) generation: String,
    /// The chunk items, by index.
    pub(super) chunks: Vec<Item>,
    /// The chunks ride in the numbering transaction; else they are written ahead by
    /// `BatchWriteItem` (too many bytes or actions for one transaction).
    pub(super) inline: bool,
}

/// What a singleOrgSync makes of the set read.
pub(super) enum Edit {
    /// A chunk of the generation read is gone: the set was replaced meanwhile. Read again.
    Stale,
    /// The change changes nothing (a department deleted that is not there, or put as it is):
    /// `ORGSET` is only checked.
    Unchanged,
    /// `replaced_empty`: the set read held no department, so nothing is left to drop once
    /// `ORGSET` names the new one (generation 0 was just read whole: it is not looked for again).
    Changed { set: NewSet, replaced_empty: bool },
}

impl DynamoDirectory {
    /// The current department set (`None`: no `ORGSET`, generation `0`, one item per department).
    pub(super) async fn read_orgset(&self, pk: &str) -> Result<Option<SetRef>, StoreError> {
        self.table
            .get_item(pk, ORGSET_SK)
            .await?
            .map(|item| decode_orgset_item(&item))
            .transpose()
    }

    /// The departments of `set`, by `org_code`; `None` when a chunk is gone (the set was replaced
    /// and dropped meanwhile). One item per department (a release before the chunks): read
    /// whatever is under the generation's prefix.
    pub(super) async fn read_set(
        &self,
        pk: &str,
        set: Option<&SetRef>,
    ) -> Result<Option<Vec<Department>>, StoreError> {
        let generation = generation_of(set);
        let mut departments = match set.and_then(|s| s.chunks) {
            Some(0) => Vec::new(),
            Some(n) => {
                let keys = (0..n)
                    .map(|i| key_of(pk, chunk_sk(generation, i)))
                    .collect();
                let items = self.batch_get_by(keys, CHUNKS_PER_GET).await?;
                if items.len() < n as usize {
                    return Ok(None);
                }
                let mut departments = Vec::new();
                for item in &items {
                    departments.extend(decode_chunk_item(item, generation, n)?);
                }
                departments
            }
            None => {
                let prefix = org_prefix(generation);
                self.query(pk, SkRange::Prefix(&prefix), false, None)
                    .await?
                    .iter()
                    .map(|item| decode_department_item(item, generation))
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        departments.sort_by(|a, b| a.org_code.cmp(&b.org_code));
        if let Some(twice) = departments
            .windows(2)
            .find(|w| w[0].org_code == w[1].org_code)
        {
            return Err(StoreError::Corrupt(
                format!(
                    "directory {pk}: department {:?} is stored twice in generation {generation}",
                    twice[0].org_code
                )
                .into(),
            ));
        }
        Ok(Some(departments))
    }

    /// `departments` (by `org_code`, each once) in chunks under a fresh generation; in the
    /// numbering transaction when they fit there beside `events`.
    pub(super) fn new_set(
        &self,
        pk: &str,
        departments: &[Department],
        events: &[EventBody],
        now: DateTime<Utc>,
    ) -> Result<NewSet, StoreError> {
        let generation = uuid::Uuid::new_v4().simple().to_string();
        let chunks = record::split_department_chunks(departments, MAX_CHUNK_BYTES)
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| {
                let index = u32::try_from(i).map_err(|_| {
                    StoreError::Corrupt(format!("directory {pk}: {i} department chunks").into())
                })?;
                let item = record_item(pk, chunk_sk(&generation, index), bytes)?;
                check_size(&item)?;
                Ok(item)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let inline = fits_inline(pk, &chunks, events, now)?;
        Ok(NewSet {
            generation,
            chunks,
            inline,
        })
    }

    /// The chunks of a set too big for the numbering transaction, ahead of it.
    pub(super) async fn write_ahead(&self, set: &NewSet) -> Result<(), StoreError> {
        if set.inline {
            return Ok(());
        }
        let puts = set
            .chunks
            .iter()
            .map(|c| put_request(c.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(puts, "department chunks").await
    }

    /// A set written ahead whose transaction was cancelled: never read, deleted best effort.
    pub(super) async fn discard(&self, pk: &str, set: &NewSet) {
        if set.inline {
            return;
        }
        let deletes = set
            .chunks
            .iter()
            .map(|c| delete_request(key_from(c)?))
            .collect::<Result<Vec<_>, _>>();
        let done = match deletes {
            Ok(deletes) => self.batch_write(deletes, "discard department chunks").await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            tracing::warn!(
                pk = %pk, generation = %set.generation, error = %e,
                "department chunks of a cancelled sync not deleted; they are never read, and a tenant deletion sweeps them"
            );
        }
    }

    /// Step 3 (module docs): the set `ORGSET` no longer names, deleted best effort.
    pub(super) async fn drop_set(&self, pk: &str, old: Option<&SetRef>) {
        let generation = generation_of(old);
        let dropped = match old.and_then(|s| s.chunks) {
            Some(n) => {
                let deletes = (0..n)
                    .map(|i| delete_request(key_of(pk, chunk_sk(generation, i))))
                    .collect::<Result<Vec<_>, _>>();
                match deletes {
                    Ok(deletes) => self.batch_write(deletes, "drop replaced departments").await,
                    Err(e) => Err(e),
                }
            }
            // One item per department (also generation 0: a release before the chunks may have
            // written there without an `ORGSET`).
            None => {
                self.sweep(pk, &[&org_prefix(generation)], "drop replaced departments")
                    .await
            }
        };
        if let Err(e) = dropped {
            tracing::warn!(
                pk = %pk, generation = generation, error = %e,
                "replaced departments not deleted; they are never read, and a tenant deletion sweeps them"
            );
        }
    }

    /// A singleOrgSync on the set `state` names: read it, apply the change, and (if it changes
    /// anything) chunk the result under a new generation.
    pub(super) async fn edit_set(
        &self,
        pk: &str,
        state: &State,
        change: &DirectoryChange,
        events: &[EventBody],
        now: DateTime<Utc>,
    ) -> Result<Edit, StoreError> {
        let Some(departments) = self.read_set(pk, state.set.as_ref()).await? else {
            return Ok(Edit::Stale);
        };
        let replaced_empty = departments.is_empty();
        let mut by_code: std::collections::BTreeMap<String, Department> = departments
            .into_iter()
            .map(|d| (d.org_code.clone(), d))
            .collect();
        let changed = match change {
            DirectoryChange::PutDepartment(d) => {
                by_code.insert(d.org_code.clone(), d.clone()).as_ref() != Some(d)
            }
            DirectoryChange::DeleteDepartment { org_code } => by_code.remove(org_code).is_some(),
            _ => unreachable!("edit_set is only called for a singleOrgSync"),
        };
        if !changed {
            return Ok(Edit::Unchanged);
        }
        let departments: Vec<Department> = by_code.into_values().collect();
        Ok(Edit::Changed {
            set: self.new_set(pk, &departments, events, now)?,
            replaced_empty,
        })
    }

    /// `ORGSET`, then the set it names: its chunks (a generation's chunks never change, so all of
    /// them found is the whole set), or, one item per department (a release before the chunks),
    /// the generation's items and `ORGSET` again. A set replaced meanwhile may be deleted under
    /// the read, which then starts over.
    pub(super) async fn read_departments(
        &self,
        key: &TenantKey,
    ) -> Result<Vec<Department>, StoreError> {
        let pk = tenant_pk(key);
        let mut set = self.read_orgset(&pk).await?;
        for _ in 0..MAX_DEPARTMENT_READS {
            let read = self.read_set(&pk, set.as_ref()).await?;
            let chunked = set.as_ref().is_some_and(|s| s.chunks.is_some());
            if chunked && let Some(departments) = read {
                return Ok(departments);
            }
            let after = self.read_orgset(&pk).await?;
            if after == set {
                match read {
                    Some(departments) => return Ok(departments),
                    None => {
                        return Err(StoreError::Corrupt(
                            format!(
                                "directory {pk}: a chunk of department generation {} is missing",
                                generation_of(set.as_ref())
                            )
                            .into(),
                        ));
                    }
                }
            }
            set = after;
        }
        Err(StoreError::Unavailable(format!(
            "directory {pk}: the department set was replaced during each of {MAX_DEPARTMENT_READS} reads"
        ).into()))
    }
}

/// Whether a new set's chunks fit in the numbering transaction beside `events`: DynamoDB's 100
/// actions, and [`MAX_INLINE_BYTES`] of items (the events sized with the longest seq).
pub(super) fn fits_inline(
    pk: &str,
    chunks: &[Item],
    events: &[EventBody],
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if chunks.len() + events.len() + FIXED_ACTIONS > MAX_TRANSACTION_ITEMS {
        return Ok(false);
    }
    // SEQ and ORGSET: keys and a number or a generation.
    let mut bytes = 2 * 256 + chunks.iter().map(item_bytes).sum::<usize>();
    for body in events {
        let event = DirectoryEvent {
            seq: u64::MAX,
            at: now,
            body: body.clone(),
        };
        bytes += item_bytes(&event_item(pk, &event)?);
        if bytes > MAX_INLINE_BYTES {
            return Ok(false);
        }
    }
    Ok(bytes <= MAX_INLINE_BYTES)
}
