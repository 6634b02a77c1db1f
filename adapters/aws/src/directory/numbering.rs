//! The numbering transaction (module docs, step 2): `SEQ` advanced on the value read, the events
//! under the seqs that follow, the change's record, `ORGSET` flipped; and what its cancellation
//! reasons mean.

use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, Utc};
use koogallery::{
    StoreError,
    directory::{Applied, DirectoryChange, DirectoryEvent, EventBody, TenantKey, record},
};

use super::{
    DynamoDirectory, FIXED_ACTIONS,
    departments::{NewSet, SetRef},
    items::{
        decode_orgset_item, decode_seq_item, event_item, locator_item, orgset_item, record_item,
        seq_item,
    },
    keys::*,
};
use crate::dynamo::{
    attr::{Item, key_of, n, s, string_attr},
    keys::{SEQ, SK},
    sdk::{CONDITION_FAILED, Condition, TRANSACTION_CONFLICT, reason_codes, request_token},
};

/// What the numbering transaction was built on.
#[derive(Debug, Clone, Default)]
pub(super) struct State {
    pub(super) last_seq: u64,
    /// A `SEQ` item exists (else the transaction creates it).
    pub(super) seq_stored: bool,
    /// The `ORGSET` item, when one is stored (read only for department changes). None:
    /// generation [`FIRST_GENERATION`], one item per department.
    pub(super) set: Option<SetRef>,
}

/// The numbering transaction of one attempt.
pub(super) struct Planned {
    pub(super) items: Vec<TransactWriteItem>,
    /// The first `guards` actions are conditioned on the state read (`SEQ`, `ORGSET`).
    pub(super) guards: usize,
    /// The events' actions start here.
    pub(super) events_from: usize,
    pub(super) applied: Applied,
}

/// Why a numbering transaction was cancelled.
#[derive(Debug, PartialEq)]
pub(super) enum Cancel {
    /// A concurrent apply changed `SEQ` or `ORGSET`, or is writing them: read again, retry.
    Contended(String),
    /// `SEQ` held, yet an event's seq is taken: the partition is inconsistent.
    EventTaken,
    /// Anything else (throttling, validation): the codes.
    Other(String),
}

/// Reasons are positional: guards first, then the record (if any), then the events.
pub(super) fn classify(
    reasons: &[(String, Option<Item>)],
    guards: usize,
    events_from: usize,
) -> Cancel {
    let codes = reason_codes(reasons);
    if reasons.iter().any(|(c, _)| c == TRANSACTION_CONFLICT)
        || reasons
            .iter()
            .take(guards)
            .any(|(c, _)| c == CONDITION_FAILED)
    {
        return Cancel::Contended(codes);
    }
    if reasons
        .iter()
        .skip(events_from)
        .any(|(c, _)| c == CONDITION_FAILED)
    {
        return Cancel::EventTaken;
    }
    Cancel::Other(codes)
}

/// `SEQ` still holds what was read (or is still absent).
pub(super) fn seq_unchanged(state: &State) -> Condition {
    if state.seq_stored {
        Condition::new("#seq = :seq")
            .name("#seq", SEQ)
            .value(":seq", n(state.last_seq))
    } else {
        Condition::absent()
    }
}

/// `ORGSET` still names the generation read (or is still absent).
pub(super) fn generation_unchanged(state: &State) -> Condition {
    // A generation is never reused (a fresh UUID each time), so its name says it all.
    match &state.set {
        Some(set) => Condition::new("#g = :g")
            .name("#g", GENERATION)
            .value(":g", s(&set.generation)),
        None => Condition::absent(),
    }
}

impl DynamoDirectory {
    /// `SEQ`, and `ORGSET` when `with_generation` (one `BatchGetItem`).
    pub(super) async fn read_state(
        &self,
        pk: &str,
        with_generation: bool,
    ) -> Result<State, StoreError> {
        let items = if with_generation {
            self.batch_get(vec![key_of(pk, SEQ_SK), key_of(pk, ORGSET_SK)])
                .await?
        } else {
            self.table.get_item(pk, SEQ_SK).await?.into_iter().collect()
        };
        let mut state = State::default();
        for item in &items {
            match string_attr(item, SK).map_err(|m| StoreError::Corrupt(m.into()))? {
                SEQ_SK => {
                    state.last_seq = decode_seq_item(item)?;
                    state.seq_stored = true;
                }
                ORGSET_SK => state.set = Some(decode_orgset_item(item)?),
                other => {
                    return Err(StoreError::Corrupt(
                        format!("directory {pk}: asked for SEQ and ORGSET, got {other}").into(),
                    ));
                }
            }
        }
        Ok(state)
    }

    /// Step 2 (module docs): the numbering transaction on `state`.
    pub(super) fn plan(
        &self,
        key: &TenantKey,
        change: &DirectoryChange,
        events: &[EventBody],
        now: DateTime<Utc>,
        state: &State,
        set: Option<&NewSet>,
    ) -> Result<Planned, StoreError> {
        let pk = &tenant_pk(key);
        let first_seq = state.last_seq + 1;
        let last_seq = state.last_seq + events.len() as u64;
        let mut items = Vec::with_capacity(events.len() + FIXED_ACTIONS);
        if !events.is_empty() {
            items.push(self.tx_put(seq_item(pk, last_seq), Some(seq_unchanged(state)))?);
        }
        // A department change flips ORGSET from the set read to its new set (a singleOrgSync's
        // new set is built from the one read; a replacement must not flip a set it did not
        // see replaced); a singleOrgSync that changes nothing checks the set is still current.
        if let Some(set) = set {
            let chunks = u32::try_from(set.chunks.len()).unwrap_or(u32::MAX);
            items.push(self.tx_put(
                orgset_item(pk, &set.generation, chunks),
                Some(generation_unchanged(state)),
            )?);
        } else if matches!(
            change,
            DirectoryChange::PutDepartment(_) | DirectoryChange::DeleteDepartment { .. }
        ) {
            items.push(
                self.table
                    .tx_check(key_of(pk, ORGSET_SK), generation_unchanged(state))?,
            );
        }
        let guards = items.len();
        items.extend(self.record_actions(key, pk, change)?);
        // A new generation's chunks: no reader reads them before ORGSET names it.
        if let Some(set) = set.filter(|s| s.inline) {
            for chunk in &set.chunks {
                items.push(self.tx_put(chunk.clone(), None)?);
            }
        }
        let events_from = items.len();
        for (seq, body) in (first_seq..).zip(events) {
            let event = DirectoryEvent {
                seq,
                at: now,
                body: body.clone(),
            };
            // Never over an event still pending: a failure here means SEQ fell behind.
            items.push(self.tx_put(event_item(pk, &event)?, Some(Condition::absent()))?);
        }
        Ok(Planned {
            items,
            guards,
            events_from,
            applied: Applied {
                first_seq,
                last_seq,
            },
        })
    }

    /// The change's single record, if it has one: a tenant or an app put or deleted; a tenant's
    /// locator item (`TenantLocator`) with its record.
    fn record_actions(
        &self,
        key: &TenantKey,
        pk: &str,
        change: &DirectoryChange,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let locator = || key_of(locator_pk(&key.tenant_id), locator_sk(&key.instance_id));
        Ok(match change {
            DirectoryChange::PutTenant(t) => vec![
                self.tx_put(
                    record_item(pk, TENANT_SK.to_owned(), record::encode_tenant(t))?,
                    None,
                )?,
                self.tx_put(locator_item(key, t)?, None)?,
            ],
            DirectoryChange::DeleteTenant => vec![
                self.table.tx_delete(key_of(pk, TENANT_SK))?,
                self.table.tx_delete(locator())?,
            ],
            DirectoryChange::PutApp(a) => vec![self.tx_put(
                record_item(pk, app_sk(&a.app_id), record::encode_app(a))?,
                None,
            )?],
            DirectoryChange::DeleteApp { app_id } => {
                vec![self.table.tx_delete(key_of(pk, app_sk(app_id)))?]
            }
            DirectoryChange::PutUsers { .. }
            | DirectoryChange::RevokeUsers { .. }
            | DirectoryChange::DeleteUsers { .. }
            | DirectoryChange::PutDepartment(_)
            | DirectoryChange::DeleteDepartment { .. }
            | DirectoryChange::ReplaceDepartments(_)
            | DirectoryChange::SessionsEnded(_) => vec![],
        })
    }

    /// Sends one numbering transaction: `Ok(None)` when committed, `Ok(Some(codes))` when a
    /// concurrent apply won.
    pub(super) async fn transact(
        &self,
        pk: &str,
        planned: Planned,
    ) -> Result<Option<String>, StoreError> {
        let (guards, events_from) = (planned.guards, planned.events_from);
        let what = format!("TransactWriteItems (directory {pk})");
        let sent = self
            .table
            .transact(planned.items, Some(request_token()), &what);
        let Some(reasons) = sent.await? else {
            return Ok(None);
        };
        match classify(&reasons, guards, events_from) {
            Cancel::Contended(codes) => Ok(Some(codes)),
            Cancel::EventTaken => Err(StoreError::Corrupt(
                format!("directory {pk}: an event seq past the stored SEQ is already taken").into(),
            )),
            Cancel::Other(codes) => Err(StoreError::Unavailable(
                format!("{what}: transaction cancelled ({codes})").into(),
            )),
        }
    }
}
