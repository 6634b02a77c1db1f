//! The instance's ID (docs/protocol/callbacks.md §6.1: the `instanceId` KooGallery learns from
//! newInstance and names in every later call): a type of its own, so an order ID, an order-line ID
//! or a tenant ID cannot be passed where an instance is meant.

crate::id::string_id! {
    /// An instance's ID as stored (a debug record's carries its keyspace, see `callbacks::debug`).
    /// It reads as the `&str` it holds; the stored records keep it as a plain string.
    InstanceId
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jobs and records hold the ID as the plain string they always held: the type changes no
    /// stored or queued form.
    #[test]
    fn it_is_the_plain_string_on_the_wire_and_on_disk() {
        let id = InstanceId::from("87b94795-0603");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"87b94795-0603\"");
        let back: InstanceId = serde_json::from_str("\"87b94795-0603\"").unwrap();
        assert_eq!(back, id);
        assert_eq!(id, "87b94795-0603");
        assert_eq!(id.to_string(), "87b94795-0603");
    }
}
