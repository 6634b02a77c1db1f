//! The SDK plumbing the stores share, written once: DynamoDB's limits, how SDK failures map to
//! [`StoreError`], cancelled transactions and their reasons, backoff, request tokens; the
//! [`Table`] every store sends its requests through, counted; [`Condition`]s.

use std::{
    hash::BuildHasher,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use aws_sdk_dynamodb::{
    error::SdkError,
    operation::{put_item::PutItemError, transact_write_items::TransactWriteItemsError},
    types::{DeleteRequest, PutRequest, WriteRequest},
};
use koogallery::{StoreError, failure::Detail};

use super::attr::Item;
use koogallery::retry::{Backoff, Jitter};

mod batch;
mod condition;
mod counts;
mod table;

pub(crate) use batch::{BatchGet, BatchWrite};
pub(crate) use condition::Condition;
pub(crate) use counts::Request;
pub(crate) use table::Table;

/// DynamoDB's limit on the actions of one `TransactWriteItems`.
pub(crate) const MAX_TRANSACTION_ITEMS: usize = 100;
/// DynamoDB's limit on the keys of one `BatchGetItem`.
pub(crate) const MAX_BATCH_GET_KEYS: usize = 100;
/// DynamoDB's limit on the requests of one `BatchWriteItem`.
pub const MAX_BATCH_WRITE_ITEMS: usize = 25;
/// Rounds of `UnprocessedKeys` retries before a batched read gives up as unavailable.
pub(crate) const MAX_UNPROCESSED_RETRIES: u32 = 8;

/// Any SDK failure that is not a failed condition: throttling, service errors, timeouts, network,
/// missing table, validation. Names the operation and keeps the SDK error as the source.
pub(crate) fn unavailable<E, R>(op: &str, err: SdkError<E, R>) -> StoreError
where
    SdkError<E, R>: std::error::Error + Send + Sync + 'static,
{
    StoreError::Unavailable(Detail::caused_by(format!("DynamoDB {op} failed"), err))
}

/// A request that could not be built (a required field missing): a bug, reported as
/// `Unavailable`.
pub(crate) fn build_error(
    what: &str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::Unavailable(Detail::caused_by(
        format!("cannot build DynamoDB {what}"),
        e,
    ))
}

/// The reasons of a cancelled transaction, one per action in its order: the code (`None` when
/// the action was not the cause) and the old item DynamoDB returned for a failed condition, if
/// it was asked for.
pub(crate) type Reasons = Vec<(String, Option<Item>)>;

/// The cancellation reasons of a cancelled transaction (`None` for any other failure).
fn cancellation_reasons<R>(err: &SdkError<TransactWriteItemsError, R>) -> Option<Reasons> {
    match err.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(e) => Some(
            e.cancellation_reasons()
                .iter()
                .map(|r| (r.code().unwrap_or("None").to_owned(), r.item().cloned()))
                .collect(),
        ),
        _ => None,
    }
}

pub(crate) const CONDITION_FAILED: &str = "ConditionalCheckFailed";
pub(crate) const TRANSACTION_CONFLICT: &str = "TransactionConflict";

pub(crate) fn reason_codes(reasons: &[(String, Option<Item>)]) -> String {
    reasons
        .iter()
        .map(|(c, _)| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A failed condition or a conflicting transaction: another writer was first, or is writing
/// right now.
pub(crate) fn lost_to_a_writer(reasons: &[(String, Option<Item>)]) -> bool {
    reasons
        .iter()
        .any(|(c, _)| c == CONDITION_FAILED || c == TRANSACTION_CONFLICT)
}

/// A transaction cancelled for another reason (throttling, validation, …): `what` names it.
pub(crate) fn cancelled(what: &str, reasons: &[(String, Option<Item>)]) -> StoreError {
    StoreError::Unavailable(
        format!("{what}: transaction cancelled ({})", reason_codes(reasons)).into(),
    )
}

/// How a conflicted transaction or unprocessed items wait: 20 ms doubling to 1280 ms, equal
/// jitter (so the `attempt`-th wait, from 0, is between 10 ms and 20 ms times 2^attempt, at
/// most 1280 ms).
pub(crate) const RETRY: Backoff = Backoff {
    first: Duration::from_millis(20),
    max: Duration::from_millis(1280),
    jitter: Jitter::Equal,
};

/// The wait before retry `attempt + 1` ([`RETRY`]; `attempt` counts from 0).
pub(crate) fn backoff(attempt: u32) -> Duration {
    RETRY.delay(attempt.saturating_add(1))
}

/// A `ClientRequestToken` no other transaction uses: the time and a per-process random number.
pub(crate) fn request_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let random = std::collections::hash_map::RandomState::new()
        .hash_one(NEXT.fetch_add(1, Ordering::Relaxed));
    format!("{nanos:016x}{random:016x}")
}

/// A `BatchWriteItem`'s put of `item`.
pub(crate) fn put_request(item: Item) -> Result<WriteRequest, StoreError> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| build_error("PutRequest", e))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

/// A `BatchWriteItem`'s delete of the item under `key`.
pub(crate) fn delete_request(key: Item) -> Result<WriteRequest, StoreError> {
    let delete = DeleteRequest::builder()
        .set_key(Some(key))
        .build()
        .map_err(|e| build_error("DeleteRequest", e))?;
    Ok(WriteRequest::builder().delete_request(delete).build())
}

/// A conditional `PutItem`: true when written, false when its condition failed.
async fn put_if(
    put: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
    what: &str,
) -> Result<bool, StoreError> {
    match put.send().await {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(PutItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(unavailable(what, e)),
    }
}
