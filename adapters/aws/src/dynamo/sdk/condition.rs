//! Condition expressions with the attribute names and values they use, for the puts and checks
//! of a transaction and for a `PutItem`.

use std::collections::HashMap;

use aws_sdk_dynamodb::{
    operation::put_item::builders::PutItemFluentBuilder, types::AttributeValue,
};

use crate::dynamo::{
    attr::n,
    keys::{PK, VERSION},
};

/// A condition expression (its parts joined by `AND`) with its names and values.
#[derive(Debug, Clone)]
pub(crate) struct Condition {
    parts: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    /// In a transaction, the old item comes back in the cancellation reason when this fails.
    pub(super) return_old: bool,
}

impl Condition {
    pub(crate) fn new(part: &str) -> Self {
        Self {
            parts: vec![part.to_owned()],
            names: HashMap::new(),
            values: HashMap::new(),
            return_old: false,
        }
    }

    /// No item at all.
    pub(crate) fn absent() -> Self {
        Self::new("attribute_not_exists(#pk)").name("#pk", PK)
    }

    /// `version = stored`, or no version stored (a new item, or a hold alone).
    pub(crate) fn on_version(stored: Option<u64>) -> Self {
        match stored {
            Some(v) => Self::new("#v = :v").value(":v", n(v)),
            None => Self::new("attribute_not_exists(#v)"),
        }
        .name("#v", VERSION)
    }

    /// `placeholder` (`#…`) names `attribute`.
    pub(crate) fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.names.insert(placeholder.into(), attribute.into());
        self
    }

    /// `placeholder` (`:…`) stands for `value`.
    pub(crate) fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.into(), value);
        self
    }

    pub(crate) fn and(mut self, part: &str) -> Self {
        self.parts.push(part.to_owned());
        self
    }

    /// In a transaction, asks for the old item in the cancellation reason when this fails.
    pub(crate) fn returning_old(mut self) -> Self {
        self.return_old = true;
        self
    }

    pub(crate) fn expression(&self) -> String {
        self.parts.join(" AND ")
    }

    /// The names, for the request.
    pub(crate) fn names(&self) -> Option<HashMap<String, String>> {
        Some(self.names.clone())
    }

    /// DynamoDB refuses an empty map: `None` when there are no values.
    pub(crate) fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    /// `put` on this condition.
    pub(crate) fn put_item(self, put: PutItemFluentBuilder) -> PutItemFluentBuilder {
        put.condition_expression(self.expression())
            .set_expression_attribute_names(self.names())
            .set_expression_attribute_values(self.values())
    }
}
