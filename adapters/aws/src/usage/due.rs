//! The due index (module docs, The due index): the unsettled windows ended by a time, oldest
//! first.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use koogallery::{StoreError, metering::UsageWindow};

use super::{DynamoUsageStore, keys::*, windows::decode_window_item};
use crate::dynamo::{
    attr::{Item, key_of, s, string_attr},
    keys::{PK, SK},
    sdk::MAX_BATCH_GET_KEYS,
};

impl DynamoUsageStore {
    pub(super) async fn read_due(
        &self,
        ended_by: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<UsageWindow>, StoreError> {
        let Some(bound) = due_bound(ended_by) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        while out.len() < limit {
            let page = (limit - out.len()).min(MAX_BATCH_GET_KEYS);
            let query = self
                .table
                .query()
                .index_name(DUE_INDEX)
                .key_condition_expression("#d = :d AND #at < :bound")
                .expression_attribute_names("#d", DUE)
                .expression_attribute_names("#at", DUE_AT)
                .expression_attribute_values(":d", s(DUE_PARTITION))
                .expression_attribute_values(":bound", s(bound.clone()))
                .scan_index_forward(true)
                .limit(i32::try_from(page).unwrap_or(i32::MAX));
            let (found, next) = self
                .table
                .query_page(query, start.take(), "Query (due usage windows)")
                .await?;
            let mut order = Vec::with_capacity(found.len());
            for item in &found {
                let pk = string_attr(item, PK).map_err(|m| StoreError::Corrupt(m.into()))?;
                let sk = string_attr(item, SK).map_err(|m| StoreError::Corrupt(m.into()))?;
                order.push((pk.to_owned(), sk.to_owned()));
            }
            let keys = order
                .iter()
                .map(|(pk, sk)| key_of(pk.clone(), sk.clone()))
                .collect();
            let mut windows: HashMap<(String, String), UsageWindow> = HashMap::new();
            for item in self.batch_get(keys).await? {
                let w = decode_window_item(&item)?;
                windows.insert(window_key(&w.key())?, w);
            }
            // The index lags the table: what settled (or went) meanwhile is skipped.
            out.extend(
                order
                    .into_iter()
                    .filter_map(|k| windows.remove(&k))
                    .filter(|w| w.is_unsettled() && w.end() <= ended_by),
            );
            match next {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }
}
