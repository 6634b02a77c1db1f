//! `orderNotify` request (docs/protocol/callbacks.md §6.8, docs/protocol/openapi.md §7): an order
//! line was paid.

use serde::Deserialize;

use super::{CallbackRequest, MAX_ID_LEN, require, test_flag};

/// `orderNotify`: all fields mandatory; the answer is `000000` at once, the order is read with
/// Query Order afterwards.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderNotifyRequest {
    pub order_id: String,
    pub order_line_id: String,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl CallbackRequest for OrderNotifyRequest {
    fn validate(&self) -> Result<(), String> {
        require("orderId", &self.order_id, MAX_ID_LEN)?;
        require("orderLineId", &self.order_line_id, MAX_ID_LEN)
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}
