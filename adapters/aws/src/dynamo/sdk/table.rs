//! [`Table`]: the one table every store holds, and the requests they all send, each counted:
//! single reads, paged queries, conditional puts and transactions (the batched reads and writes
//! are in `batch.rs`).

use std::sync::Arc;

use aws_sdk_dynamodb::{
    Client,
    operation::{
        put_item::builders::PutItemFluentBuilder, query::builders::QueryFluentBuilder,
        scan::builders::ScanFluentBuilder,
    },
    types::{ConditionCheck, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem},
};
use koogallery::StoreError;

use super::{
    Reasons, build_error, cancellation_reasons,
    condition::Condition,
    counts::{Counts, Request},
    put_if, unavailable,
};
use crate::dynamo::{
    attr::{Item, item_bytes, key_of, s},
    keys::{DATA, PK, SK},
};

/// One table of one client, and the counts of the requests sent to it. Cheap to clone; clones
/// share the counts.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(super) client: Client,
    pub(super) name: String,
    pub(super) counts: Arc<Counts>,
}

impl Table {
    pub(crate) fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
            counts: Arc::default(),
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn counts(&self) -> &Counts {
        &self.counts
    }

    /// A `Query` of this table, to be sent with [`Self::query_all`] or [`Self::query_page`].
    pub(crate) fn query(&self) -> QueryFluentBuilder {
        self.client.query().table_name(&self.name)
    }

    /// A consistent `Query` of the items of partition `pk` whose sort key starts with `prefix`.
    pub(crate) fn query_prefix(&self, pk: &str, prefix: &str) -> QueryFluentBuilder {
        self.query()
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
    }

    /// A `PutItem` into this table, to be sent with [`Self::put_if`].
    pub(crate) fn put_item(&self) -> PutItemFluentBuilder {
        self.client.put_item().table_name(&self.name)
    }

    /// The item under (`pk`, `sk`), strongly consistent.
    pub(crate) async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        self.counts.sent(Request::GetItem);
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key_of(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(&format!("GetItem {pk}/{sk}"), e))?;
        Ok(out.item)
    }

    /// One page of `query` from `start`: its items, and where the next page starts (`None`
    /// after the last).
    pub(crate) async fn query_page(
        &self,
        query: QueryFluentBuilder,
        start: Option<Item>,
        what: &str,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        self.counts.sent(Request::Query);
        let out = query
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| unavailable(what, e))?;
        let next = out.last_evaluated_key().filter(|k| !k.is_empty()).cloned();
        Ok((out.items.unwrap_or_default(), next))
    }

    /// Every item `query` matches, page after page; at most `limit` (each page asks for no
    /// more than are still wanted).
    pub(crate) async fn query_all(
        &self,
        query: QueryFluentBuilder,
        limit: Option<usize>,
        what: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut page = query.clone();
            if let Some(limit) = limit {
                let left = limit.saturating_sub(items.len());
                page = page.limit(i32::try_from(left).unwrap_or(i32::MAX));
            }
            let (found, next) = self.query_page(page, start, what).await?;
            items.extend(found);
            if limit.is_some_and(|l| items.len() >= l) {
                break;
            }
            match next {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        if let Some(limit) = limit {
            items.truncate(limit);
        }
        Ok(items)
    }

    /// Every record item whose partition key starts with `pk_prefix` and whose sort key is `sk`
    /// (its `pk`, `sk` and `data` only): one paginated, strongly consistent `Scan` of the whole
    /// table, filtered in DynamoDB. The filter cuts what comes back, not what is read: every item
    /// of the table is read once, a read unit per 4 KB. For an operator's look, never a path
    /// KooGallery's calls take (each caller's docs say why and what it costs).
    pub(crate) async fn scan_records(
        &self,
        pk_prefix: &str,
        sk: &str,
        what: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let scan = self
            .client
            .scan()
            .table_name(&self.name)
            .consistent_read(true)
            .filter_expression("begins_with(#pk, :prefix) AND #sk = :sk")
            .projection_expression("#pk, #sk, #data")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_names("#data", DATA)
            .expression_attribute_values(":prefix", s(pk_prefix))
            .expression_attribute_values(":sk", s(sk));
        let mut items = Vec::new();
        let pages = self
            .scan_pages(scan, what, |page| {
                items.extend(page);
                Ok(())
            })
            .await?;
        tracing::debug!(pages, found = items.len(), what, "scanned the table");
        Ok(items)
    }

    /// Sends `scan` page after page until the table ends, handing each page's items to `each`
    /// (which may stop it with an error); the pages read.
    pub(crate) async fn scan_pages(
        &self,
        scan: ScanFluentBuilder,
        what: &str,
        mut each: impl FnMut(Vec<Item>) -> Result<(), StoreError>,
    ) -> Result<u32, StoreError> {
        let mut start: Option<Item> = None;
        let mut pages = 0u32;
        loop {
            let out = scan
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable(what, e))?;
            pages += 1;
            let next = out.last_evaluated_key().filter(|k| !k.is_empty()).cloned();
            each(out.items.unwrap_or_default())?;
            match next {
                Some(key) => start = Some(key),
                None => return Ok(pages),
            }
        }
    }

    /// Sends a `PutItem` built by [`Self::put_item`], counted with its item's size: true when
    /// written, false when its condition failed.
    pub(crate) async fn put_if(
        &self,
        put: PutItemFluentBuilder,
        what: &str,
    ) -> Result<bool, StoreError> {
        let bytes = put.as_input().get_item().as_ref().map_or(0, item_bytes);
        self.counts.wrote(Request::PutItem, 1, bytes);
        put_if(put, what).await
    }

    /// A transaction's put of `item` into this table, on `condition` if there is one.
    pub(crate) fn tx_put(
        &self,
        item: Item,
        condition: Option<Condition>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder().table_name(&self.name).set_item(Some(item));
        if let Some(c) = condition {
            put = put
                .condition_expression(c.expression())
                .set_expression_attribute_names(c.names())
                .set_expression_attribute_values(c.values())
                .set_return_values_on_condition_check_failure(
                    c.return_old
                        .then_some(ReturnValuesOnConditionCheckFailure::AllOld),
                );
        }
        let put = put.build().map_err(|e| build_error("Put", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A transaction's delete of the item under `key`.
    pub(crate) fn tx_delete(&self, key: Item) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.name)
            .set_key(Some(key))
            .build()
            .map_err(|e| build_error("Delete", e))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// A transaction's delete of the item under `key`, on `condition`.
    pub(crate) fn tx_delete_if(
        &self,
        key: Item,
        condition: Condition,
    ) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.name)
            .set_key(Some(key))
            .condition_expression(condition.expression())
            .set_expression_attribute_names(condition.names())
            .set_expression_attribute_values(condition.values())
            .build()
            .map_err(|e| build_error("Delete", e))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// A transaction's check of `condition` on the item under `key`.
    pub(crate) fn tx_check(
        &self,
        key: Item,
        condition: Condition,
    ) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.name)
            .set_key(Some(key))
            .condition_expression(condition.expression())
            .set_expression_attribute_names(condition.names())
            .set_expression_attribute_values(condition.values())
            .build()
            .map_err(|e| build_error("ConditionCheck", e))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// Sends a `TransactWriteItems` (with `token` as its `ClientRequestToken`, if any), counted
    /// with its items and the largest item it puts: `Ok(None)` when it committed, `Ok(Some(..))`
    /// with the cancellation reasons when it was cancelled. Any other failure is `Unavailable`,
    /// `what` naming the transaction.
    pub(crate) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        token: Option<String>,
        what: &str,
    ) -> Result<Option<Reasons>, StoreError> {
        let largest = items
            .iter()
            .filter_map(|i| i.put())
            .map(|p| item_bytes(p.item()))
            .max()
            .unwrap_or(0);
        self.counts
            .wrote(Request::TransactWriteItems, items.len(), largest);
        let err = match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .set_client_request_token(token)
            .send()
            .await
        {
            Ok(_) => return Ok(None),
            Err(err) => err,
        };
        match cancellation_reasons(&err) {
            Some(reasons) => Ok(Some(reasons)),
            None => Err(unavailable(what, err)),
        }
    }
}
