//! Item keys and attribute names of the single-table design (see the [module docs](super)).

use koogallery::order::{OrderId, OrderLineId};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const VERSION: &str = "version";
pub const DATA: &str = "data";
pub const STATE: &str = "state";
pub const ORDER_ID: &str = "order_id";
pub const ORDER_LINE_ID: &str = "order_line_id";
pub const INSTANCE_ID: &str = "instance_id";
pub const SEQ: &str = "seq";
pub const EXPIRES_MS: &str = "expires_ms";
/// The table's time-to-live attribute (Unix seconds). A reserved word in expressions.
pub const TTL: &str = "ttl";
/// Present only on instance items the worker still owes something: the instance's shard
/// ([`unsettled_shard`]), the key of the sparse, keys-only index the reconciler queries, one
/// query per shard, so no one index partition takes every unsettled instance's writes.
pub const UNSETTLED_SHARD: &str = "unsettled_shard";
pub const UNSETTLED_INDEX: &str = "unsettled-shard-index";
/// How many shards [`UNSETTLED_INDEX`] is spread over.
pub const UNSETTLED_SHARDS: u8 = 16;
/// Earlier releases marked unsettled instances with this attribute, always `"1"`, the key of
/// the legacy index below (one hot partition, every attribute projected). Nothing writes it
/// any more: an item leaves that index at its next save. Until every item has been saved
/// once, the reconciler queries it too (`DynamoStore::unsettled`); a later release drops it.
pub const LEGACY_UNSETTLED: &str = "unsettled";
pub const LEGACY_UNSETTLED_INDEX: &str = "unsettled-index";
pub const LEGACY_UNSETTLED_KEY: &str = "1";

/// The shard of an instance in [`UNSETTLED_INDEX`], `"0"` to `"15"`: from a hash of its ID,
/// the same on every save (a shard that changed would rewrite the index entry).
pub fn unsettled_shard(instance_id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(instance_id.as_bytes());
    (digest[0] % UNSETTLED_SHARDS).to_string()
}

pub const INSTANCE_SK: &str = "INSTANCE";
pub const ORDER_LINE_SK: &str = "ORDERLINE";
pub const NONCE_SK: &str = "NONCE";
/// Prefix of every event's sort key.
pub const EVENT_SK_PREFIX: &str = "EVENT#";
const INSTANCE_PK_PREFIX: &str = "INSTANCE#";

/// `INSTANCE#{instanceId}`: the partition of an instance and its events.
pub fn instance_pk(instance_id: &str) -> String {
    format!("{INSTANCE_PK_PREFIX}{instance_id}")
}

/// The instance ID back from an instance partition key.
pub fn instance_id_of(pk: &str) -> Option<&str> {
    pk.strip_prefix(INSTANCE_PK_PREFIX)
}

/// `ORDERLINE#{orderId}#{orderLineId}`, with `%` and `#` in the IDs percent-escaped.
pub fn order_line_pk(order_id: &OrderId, order_line_id: &OrderLineId) -> String {
    format!(
        "ORDERLINE#{}#{}",
        escape_component(order_id),
        escape_component(order_line_id)
    )
}

/// `EVENT#{seq:020}`: zero-padded so the sort key order is the sequence order.
pub fn event_sk(seq: u64) -> String {
    format!("{EVENT_SK_PREFIX}{seq:020}")
}

pub const ORDER_NOTICE_SK: &str = "NOTICE";

/// `ORDERNOTICE#{orderId}#{orderLineId}`, escaped as order lines are.
pub fn order_notice_pk(order_id: &OrderId, order_line_id: &OrderLineId) -> String {
    format!(
        "ORDERNOTICE#{}#{}",
        escape_component(order_id),
        escape_component(order_line_id)
    )
}

/// `NONCE#{nonce}`.
pub fn nonce_pk(nonce: &str) -> String {
    format!("NONCE#{nonce}")
}

/// The `ttl` value for an expiry in Unix millis: whole seconds, rounded up so DynamoDB never
/// deletes a nonce before it expires.
pub fn ttl_secs(expires_ms: i64) -> i64 {
    expires_ms.div_euclid(1000) + i64::from(expires_ms.rem_euclid(1000) > 0)
}

/// A key component with `%` and `#` percent-escaped (`%25`, `%23`): it never holds `#`, so
/// `#` separates components unambiguously.
pub fn escape_component(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['%', '#']) {
        s.replace('%', "%25").replace('#', "%23").into()
    } else {
        s.into()
    }
}

/// The component back from [`escape_component`]; `None` when it is not one `escape_component`
/// wrote (a `#`, or a `%` not followed by `25` or `23`).
pub fn unescape_component(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    if s.contains('#') {
        return None;
    }
    if !s.contains('%') {
        return Some(s.into());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("%25") => out.push('%'),
            Some("%23") => out.push('#'),
            _ => return None,
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_comes_back_from_its_escape_whatever_it_holds() {
        for id in ["", "plain", "a#b", "100%", "%23", "%25#%", "#", "租户#1%"] {
            let escaped = escape_component(id);
            assert!(!escaped.contains('#'), "{escaped}");
            assert_eq!(unescape_component(&escaped).as_deref(), Some(id), "{id}");
        }
        for not_escaped in ["a#b", "%", "%2", "%24", "50%x"] {
            assert_eq!(unescape_component(not_escaped), None, "{not_escaped}");
        }
    }
}
