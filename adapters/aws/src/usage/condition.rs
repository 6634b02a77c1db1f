//! The conditions of the usage items' puts: on the version read, on the item's absence, and on
//! the holds of a batch (module docs, Ingestion 5).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put};
use koogallery::StoreError;

use super::keys::{HOLD, HOLD_UNTIL};
use crate::dynamo::{
    attr::{Item, n, s},
    keys::{PK, VERSION},
};

/// A condition expression with its names and values, for a `Put` in a transaction or a
/// `PutItem`.
pub(super) struct Condition {
    parts: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Condition {
    fn new(part: &str) -> Self {
        Self {
            parts: vec![part.to_owned()],
            names: HashMap::new(),
            values: HashMap::new(),
        }
    }

    /// `version = stored`, or no version stored (a new item, or a hold alone).
    pub(super) fn on_version(stored: Option<u64>) -> Self {
        let mut c = match stored {
            Some(v) => {
                let mut c = Self::new("#v = :v");
                c.values.insert(":v".into(), n(v));
                c
            }
            None => Self::new("attribute_not_exists(#v)"),
        };
        c.names.insert("#v".into(), VERSION.into());
        c
    }

    /// No item at all.
    pub(super) fn absent() -> Self {
        let mut c = Self::new("attribute_not_exists(#pk)");
        c.names.insert("#pk".into(), PK.into());
        c
    }

    fn and(mut self, part: &str) -> Self {
        self.parts.push(part.to_owned());
        self
    }

    /// No live hold but `token`'s, if any (`now_ms`: this host's clock).
    pub(super) fn and_free(self, now_ms: i64, token: &str) -> Self {
        let mut c = self.and("(attribute_not_exists(#hu) OR #hu < :now OR #h = :me)");
        c.hold_names();
        c.values.insert(":now".into(), n(now_ms));
        c.values.insert(":me".into(), s(token));
        c
    }

    /// Held by `token`.
    pub(super) fn and_mine(self, token: &str) -> Self {
        let mut c = self.and("#h = :me");
        c.names.insert("#h".into(), HOLD.into());
        c.values.insert(":me".into(), s(token));
        c
    }

    fn hold_names(&mut self) {
        self.names.insert("#h".into(), HOLD.into());
        self.names.insert("#hu".into(), HOLD_UNTIL.into());
    }

    fn expression(&self) -> String {
        self.parts.join(" AND ")
    }

    pub(super) fn put(self, item: Item, table: &str) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(self.expression())
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values((!self.values.is_empty()).then_some(self.values))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build DynamoDB Put: {e}")))
    }

    pub(super) fn put_item(
        self,
        put: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
    ) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
        put.condition_expression(self.expression())
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values((!self.values.is_empty()).then_some(self.values))
    }
}
