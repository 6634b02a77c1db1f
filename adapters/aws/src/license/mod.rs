//! License codes on DynamoDB (License 2.0: docs/protocol/openapi.md §5–§6; docs/protocol/decisions.md
//! §21): each code's record and its daily usage in the single table of [`crate::dynamo`], with the
//! semantics of `koogallery::testing::license::MemoryLicenses`.
//!
//! # Items
//!
//! | item        | `pk`                  | `sk`           | other attributes |
//! |-------------|-----------------------|----------------|------------------|
//! | record      | `LICENSE#{code}`      | `LICENSE`      | `data` (S, the `License` JSON, `shared/tests/fixtures/license_record_v1.json`), `version` (N) |
//! | usage       | `LICUSE#{yyyy-mm-dd}` | `{code}`       | `code` (S), `clients` (SS, until reported), `listed` (BOOL), `reported` (BOOL, once reported), `ttl` |
//! | day marker  | `LICUSEDAYS`          | `{yyyy-mm-dd}` | `touches` (N), `ttl` |
//!
//! - Codes in keys have `%` and `#` percent-escaped, as everywhere in the table.
//! - `put` is a `PutItem` conditioned on `attribute_not_exists(pk)` for version 1 and on
//!   `version = :prev` otherwise; a failed condition is [`StoreError::Conflict`]. `version` is
//!   authoritative for the condition; `data` carries the same value.
//! - `record_use` is, once the code's day is listed, one `UpdateItem`: `ADD clients :id` on
//!   `attribute_exists(listed) AND attribute_not_exists(reported)`. Its first use of the day (the
//!   condition fails: no item yet, or not listed) is one `TransactWriteItems` of two updates: the
//!   day marker's `ADD touches :1` and the usage item's `ADD clients`, `SET listed`, on
//!   `attribute_not_exists(reported)`. A reported day fails both conditions: nothing is written.
//!   An empty client ID (a string set cannot hold one) is not recorded.
//! - `usage_reported` is one `UpdateItem`: `SET reported`, `REMOVE clients`, on the item existing
//!   (a day without use is not marked, as in memory).
//! - `usage_due(before, limit)` queries the day markers below `before` (ascending: oldest day
//!   first), then each day's partition for the items without `reported` (a filter), until `limit`.
//!   A day read whole with nothing left to report loses its marker (`DeleteItem` on `touches`
//!   unchanged since it was read: a listing in between keeps it; one after it writes it again), so
//!   the markers queried are those of days still due, plus today's.
//! - `ttl` (the table's time to live) is [`keys::USAGE_KEEP_DAYS`] after the day; records never
//!   expire.
//!
//! The operator's look at the codes of an order (`koogallery::operator::OrderLicenses`) has no key
//! of its own: it scans the table (`orders.rs` says why and what it costs).
//!
//! Reads are strongly consistent. Known limits: a day's clients of one code are one item, at most
//! DynamoDB's 400 KB (about 6 000 IDs of 64 characters; a use beyond it fails as `Unavailable`);
//! a day's usage of every code is one partition (DynamoDB's per-partition write throughput).

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    Client,
    error::SdkError,
    operation::{delete_item::DeleteItemError, update_item::UpdateItemError},
    types::{AttributeValue, TransactWriteItem, Update},
};
use chrono::NaiveDate;
use koogallery::{
    StoreError,
    failure::Detail,
    license::{DailyUsage, License, LicenseCode, LicenseStore},
};

use crate::dynamo::{
    DynamoStore,
    attr::{Item, key_of, n, number_attr, s, string_attr},
    keys::{DATA, PK, SK, TTL, VERSION},
    sdk::{
        CONDITION_FAILED, Condition, Table, backoff, build_error, cancelled, reason_codes,
        request_token, unavailable,
    },
};

pub mod keys;
mod orders;
#[cfg(test)]
mod tests;

use keys::*;

/// How many times a first use of a code's day is tried when its transaction meets another.
const FIRST_USE_ATTEMPTS: u32 = 4;

/// License codes and their daily usage in the single DynamoDB table; cheap to clone.
#[derive(Debug, Clone)]
pub struct DynamoLicenses {
    table: Table,
}

impl From<&DynamoStore> for DynamoLicenses {
    /// The license store on the instance store's table.
    fn from(store: &DynamoStore) -> Self {
        Self::new(store.client().clone(), store.table())
    }
}

/// A damaged record or usage item, named by its key, never by the whole code.
fn corrupt(what: String, cause: impl Into<koogallery::failure::Cause>) -> StoreError {
    StoreError::Corrupt(Detail::caused_by(what, cause))
}

/// Whether an `UpdateItem` failed on its condition.
fn condition_failed<R>(e: &SdkError<UpdateItemError, R>) -> bool {
    matches!(
        e.as_service_error(),
        Some(UpdateItemError::ConditionalCheckFailedException(_))
    )
}

fn decode_record(code: &LicenseCode, item: &Item) -> Result<License, StoreError> {
    let what = || format!("license record {}", code.masked());
    let data = string_attr(item, DATA).map_err(|m| corrupt(what(), m))?;
    serde_json::from_str(data).map_err(|e| corrupt(what(), e))
}

/// A usage item of `day` as [`DailyUsage`].
fn decode_usage(day: NaiveDate, item: &Item) -> Result<DailyUsage, StoreError> {
    let what = || {
        let sk = string_attr(item, SK).unwrap_or("?");
        let masked = LicenseCode::parse(sk).map_or_else(|_| "?".to_owned(), |c| c.masked());
        format!("license usage {} of {masked}", day_sk(day))
    };
    let code = string_attr(item, CODE)
        .map_err(|m| corrupt(what(), m))
        .and_then(|c| LicenseCode::parse(c).map_err(|m| corrupt(what(), m)))?;
    let clients = match item.get(CLIENTS) {
        Some(AttributeValue::Ss(ids)) => ids.iter().cloned().collect(),
        Some(_) => return Err(corrupt(what(), "attribute clients is not a string set")),
        None => Default::default(),
    };
    Ok(DailyUsage { code, day, clients })
}

impl DynamoLicenses {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(client, table),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        self.table.name()
    }

    fn client(&self) -> &Client {
        self.table.client()
    }

    /// The first use of `code` on `day`: the day marker touched and the usage item listed, in one
    /// transaction (see the module docs).
    async fn first_use(
        &self,
        code: &LicenseCode,
        day: NaiveDate,
        client_id: &str,
    ) -> Result<(), StoreError> {
        let ttl = usage_ttl(day);
        let marker = Update::builder()
            .table_name(self.table())
            .set_key(Some(key_of(DAYS_PK, day_sk(day))))
            .update_expression("ADD #t :one SET #ttl = :ttl")
            .expression_attribute_names("#t", TOUCHES)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":ttl", n(ttl))
            .build()
            .map_err(|e| build_error("Update (license day marker)", e))?;
        let usage = Update::builder()
            .table_name(self.table())
            .set_key(Some(key_of(usage_pk(day), usage_sk(code))))
            .update_expression("ADD #c :c SET #l = :true, #code = :code, #ttl = :ttl")
            .condition_expression("attribute_not_exists(#r)")
            .expression_attribute_names("#c", CLIENTS)
            .expression_attribute_names("#l", LISTED)
            .expression_attribute_names("#code", CODE)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_names("#r", REPORTED)
            .expression_attribute_values(":c", AttributeValue::Ss(vec![client_id.to_owned()]))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":code", s(code.as_str()))
            .expression_attribute_values(":ttl", n(ttl))
            .build()
            .map_err(|e| build_error("Update (license usage)", e))?;
        let items = vec![
            TransactWriteItem::builder().update(marker).build(),
            TransactWriteItem::builder().update(usage).build(),
        ];
        let what = "TransactWriteItems (license first use)";
        for attempt in 0..FIRST_USE_ATTEMPTS {
            let Some(reasons) = self
                .table
                .transact(items.clone(), Some(request_token()), what)
                .await?
            else {
                return Ok(());
            };
            if reasons.iter().any(|(c, _)| c == CONDITION_FAILED) {
                // Reported meanwhile: a reported day records nothing.
                return Ok(());
            }
            if attempt + 1 < FIRST_USE_ATTEMPTS {
                tracing::debug!(
                    code = %code.masked(),
                    reasons = %reason_codes(&reasons),
                    "license first use cancelled; retrying"
                );
                tokio::time::sleep(backoff(attempt)).await;
            } else {
                return Err(cancelled(what, &reasons));
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Deletes the marker of `day` if no listing touched it since it read `touches`.
    async fn drop_marker(&self, day: NaiveDate, touches: u64) -> Result<(), StoreError> {
        let condition = Condition::new("#t = :t")
            .name("#t", TOUCHES)
            .value(":t", n(touches));
        let out = self
            .client()
            .delete_item()
            .table_name(self.table())
            .set_key(Some(key_of(DAYS_PK, day_sk(day))))
            .condition_expression(condition.expression())
            .set_expression_attribute_names(condition.names())
            .set_expression_attribute_values(condition.values())
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(DeleteItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable("DeleteItem (license day marker)", e)),
        }
    }

    /// The items of `day` not yet reported, at most `limit`, and whether the day was read whole.
    async fn due_of_day(
        &self,
        day: NaiveDate,
        limit: usize,
    ) -> Result<(Vec<DailyUsage>, bool), StoreError> {
        let query = self
            .table
            .query()
            .key_condition_expression("#pk = :pk")
            .filter_expression("attribute_not_exists(#r)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#r", REPORTED)
            .expression_attribute_values(":pk", s(usage_pk(day)))
            .consistent_read(true);
        let what = format!("Query {}", usage_pk(day));
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let (items, next) = self.table.query_page(query.clone(), start, &what).await?;
            for item in &items {
                if out.len() == limit {
                    return Ok((out, false));
                }
                out.push(decode_usage(day, item)?);
            }
            match next {
                Some(key) => start = Some(key),
                None => return Ok((out, true)),
            }
        }
    }
}

#[async_trait]
impl LicenseStore for DynamoLicenses {
    async fn get(&self, code: &LicenseCode) -> Result<Option<License>, StoreError> {
        // Not `Table::get_item`, whose failure names the key: a code is a secret of the buyer's.
        let out = self
            .client()
            .get_item()
            .table_name(self.table())
            .set_key(Some(key_of(license_pk(code), LICENSE_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(&format!("GetItem (license {})", code.masked()), e))?;
        out.item.map(|item| decode_record(code, &item)).transpose()
    }

    async fn put(&self, license: &License) -> Result<(), StoreError> {
        let code = &license.code;
        let condition = match license.version {
            0 => return Err(StoreError::Conflict),
            1 => Condition::absent(),
            v => Condition::on_version(Some(v - 1)),
        };
        let data = serde_json::to_string(license)
            .map_err(|e| corrupt(format!("license record {}", code.masked()), e))?;
        let mut item = key_of(license_pk(code), LICENSE_SK);
        item.insert(DATA.to_owned(), s(data));
        item.insert(VERSION.to_owned(), n(license.version));
        let put = condition.put_item(self.table.put_item().set_item(Some(item)));
        if self.table.put_if(put, "PutItem (license)").await? {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    async fn record_use(
        &self,
        code: &LicenseCode,
        day: NaiveDate,
        client_id: &str,
    ) -> Result<(), StoreError> {
        if client_id.is_empty() {
            tracing::debug!(code = %code.masked(), "license use without a client ID not recorded");
            return Ok(());
        }
        let out = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key_of(usage_pk(day), usage_sk(code))))
            .update_expression("ADD #c :c")
            .condition_expression("attribute_exists(#l) AND attribute_not_exists(#r)")
            .expression_attribute_names("#c", CLIENTS)
            .expression_attribute_names("#l", LISTED)
            .expression_attribute_names("#r", REPORTED)
            .expression_attribute_values(":c", AttributeValue::Ss(vec![client_id.to_owned()]))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            // Not listed yet, or reported: the transaction tells which.
            Err(e) if condition_failed(&e) => self.first_use(code, day, client_id).await,
            Err(e) => Err(unavailable("UpdateItem (license usage)", e)),
        }
    }

    async fn usage_due(
        &self,
        before: NaiveDate,
        limit: usize,
    ) -> Result<Vec<DailyUsage>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let markers = self
            .table
            .query()
            .key_condition_expression("#pk = :pk AND #sk < :before")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(DAYS_PK))
            .expression_attribute_values(":before", s(day_sk(before)))
            .consistent_read(true);
        let what = format!("Query {DAYS_PK}");
        let mut start = None;
        loop {
            let (items, next) = self.table.query_page(markers.clone(), start, &what).await?;
            for marker in &items {
                let sk = string_attr(marker, SK).unwrap_or_default();
                let day = day_of(sk)
                    .ok_or_else(|| corrupt(format!("license day marker {sk:?}"), "not a day"))?;
                let touches: u64 = number_attr(marker, TOUCHES)
                    .map_err(|m| corrupt(format!("license day marker {sk}"), m))?;
                let (due, whole) = self.due_of_day(day, limit - out.len()).await?;
                if whole && due.is_empty() {
                    self.drop_marker(day, touches).await?;
                }
                out.extend(due);
                if out.len() == limit {
                    return Ok(out);
                }
            }
            match next {
                Some(key) => start = Some(key),
                None => return Ok(out),
            }
        }
    }

    async fn usage_reported(&self, code: &LicenseCode, day: NaiveDate) -> Result<(), StoreError> {
        let out = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key_of(usage_pk(day), usage_sk(code))))
            .update_expression("SET #r = :true REMOVE #c")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#r", REPORTED)
            .expression_attribute_names("#c", CLIENTS)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            // No use recorded that day: nothing to mark.
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(unavailable("UpdateItem (license usage reported)", e)),
        }
    }
}
