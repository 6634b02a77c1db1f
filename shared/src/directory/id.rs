//! The tenant's ID (docs/protocol/callbacks.md §9: the Kit's `tenantId`, the buyer's enterprise): a
//! type of its own, so it cannot be swapped with the instance ID it is keyed with.

crate::id::string_id! {
    /// A tenant's ID (`tenantId`). The stored records keep it as a plain string.
    TenantId
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jobs and keys hold the ID as the plain string they always held.
    #[test]
    fn it_is_the_plain_string_on_the_wire_and_on_disk() {
        let id = TenantId::from("t-1");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"t-1\"");
        let back: TenantId = serde_json::from_str("\"t-1\"").unwrap();
        assert_eq!(back, id);
        assert_eq!(id, "t-1");
        assert_eq!(id.to_string(), "t-1");
    }
}
