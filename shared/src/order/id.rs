//! The IDs KooGallery gives an order and its lines (docs/protocol/callbacks.md §6.1 `orderId`,
//! `orderLineId`): types of their own, so the two (or an instance ID) cannot be swapped.

crate::id::string_id! {
    /// An order's ID (`orderId`). A debug record's carries its keyspace, see `callbacks::debug`.
    OrderId
}

crate::id::string_id! {
    /// An order line's ID (`orderLineId`): with the [`OrderId`], the key newInstance and
    /// orderNotify are idempotent on.
    OrderLineId
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records, jobs and events hold the IDs as the plain strings they always held.
    #[test]
    fn they_are_the_plain_strings_on_the_wire_and_on_disk() {
        let order = OrderId::from("CS1");
        let line = OrderLineId::from("CS1-000001");
        assert_eq!(serde_json::to_string(&order).unwrap(), "\"CS1\"");
        assert_eq!(serde_json::to_string(&line).unwrap(), "\"CS1-000001\"");
        let back: OrderLineId = serde_json::from_str("\"CS1-000001\"").unwrap();
        assert_eq!(back, line);
        assert_eq!(order, "CS1");
        assert_eq!(line.to_string(), "CS1-000001");
    }
}
