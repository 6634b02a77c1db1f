//! The SDK calls the stores share, and how their failures map to [`StoreError`]: DynamoDB's
//! limits, conditional puts, paged queries, cancelled transactions, backoff.

use std::{
    hash::BuildHasher,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use aws_sdk_dynamodb::{
    error::{DisplayErrorContext, SdkError},
    operation::{put_item::PutItemError, transact_write_items::TransactWriteItemsError},
};
use koogallery::StoreError;

use super::attr::Item;

/// DynamoDB's limit on the actions of one `TransactWriteItems`.
pub(crate) const MAX_TRANSACTION_ITEMS: usize = 100;
/// DynamoDB's limit on the keys of one `BatchGetItem`.
pub(crate) const MAX_BATCH_GET_KEYS: usize = 100;
/// Rounds of `UnprocessedKeys` retries before a batched read gives up as unavailable.
pub(crate) const MAX_UNPROCESSED_RETRIES: u32 = 8;

/// Any SDK failure that is not a failed condition: throttling, service errors, timeouts, network,
/// missing table, validation. Carries the operation and the full error chain.
pub(crate) fn unavailable<E, R>(op: &str, err: &SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(format!(
        "DynamoDB {op} failed: {}",
        DisplayErrorContext(err)
    ))
}

/// The cancellation reason codes of a cancelled transaction (`None` for any other failure), with
/// the old item DynamoDB returned for a failed condition, if any.
pub(crate) fn cancellation_reasons<R>(
    err: &SdkError<TransactWriteItemsError, R>,
) -> Option<Vec<(String, Option<Item>)>> {
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

/// Exponential backoff from 10 ms, capped at 640 ms, with up to 100% jitter.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 10u64 << attempt.min(6);
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0),
    ) % base.max(1);
    Duration::from_millis(base + jitter)
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

/// A conditional `PutItem`: true when written, false when its condition failed.
pub(crate) async fn put_if(
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
        Err(e) => Err(unavailable(what, &e)),
    }
}

/// Every item a query matches, page after page.
pub(crate) async fn query_all(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    what: &str,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = query
            .clone()
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| unavailable(what, &e))?;
        items.extend(out.items().iter().cloned());
        match out.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => return Ok(items),
        }
    }
}
