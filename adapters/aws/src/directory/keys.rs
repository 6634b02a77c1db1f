//! Item keys and attribute names of the directory items (see the [module docs](super)).

use koogallery::directory::TenantKey;

use crate::dynamo::keys::escape_component as esc;

pub const DIR_PK_PREFIX: &str = "DIR#";
pub const TENANT_SK: &str = "TENANT";
pub const APP_SK_PREFIX: &str = "APP#";
pub const USER_SK_PREFIX: &str = "USER#";
pub const ORGSET_SK: &str = "ORGSET";
/// The departments of a generation one item each, as releases before the chunks wrote them
/// (still read, never written).
pub const ORG_SK_PREFIX: &str = "ORG#";
pub const ORGCHUNK_SK_PREFIX: &str = "ORGCHUNK#";
/// What a tenant deletion sweeps besides apps and users: `ORGCHUNK#…`, `ORG#…` and `ORGSET`.
pub const ORG_SWEEP_PREFIX: &str = "ORG";
pub const SEQ_SK: &str = "SEQ";
pub const EVENT_SK_PREFIX: &str = "EVENT#";
/// The `ORGSET` item's attribute: the generation the departments are read from.
pub const GENERATION: &str = "generation";
/// The `ORGSET` item's attribute: how many chunks the generation has. Absent: its departments
/// are `ORG#{generation}#…` items, one each (written by a release before the chunks).
pub const CHUNKS: &str = "chunks";
/// The generation of a tenant that has no `ORGSET` item (no allOrgSync yet).
pub const FIRST_GENERATION: &str = "0";
/// The sort key prefix of a tenant's locator item: `TENANT#{instanceId}` (an instanceId may be
/// empty, a sort key may not).
pub const LOCATOR_SK_PREFIX: &str = "TENANT#";
/// The partition keys the directory lives under (for an IAM `dynamodb:LeadingKeys` condition).
pub const LEADING_KEYS: &[&str] = &["DIR#*"];

/// `DIR#{instanceId}#{tenantId}`, escaped: the tenant's partition.
pub fn tenant_pk(key: &TenantKey) -> String {
    format!(
        "{DIR_PK_PREFIX}{}#{}",
        esc(&key.instance_id),
        esc(&key.tenant_id)
    )
}

/// `DIR#{tenantId}`, escaped: the tenant's locator partition, one item per instance the tenant
/// is stored under (`TenantLocator`). It holds one `#` where a tenant's partition holds two, so
/// the two never meet, and it is under `DIR#`, so the directory's IAM condition covers it.
pub fn locator_pk(tenant_id: &str) -> String {
    format!("{DIR_PK_PREFIX}{}", esc(tenant_id))
}

/// `TENANT#{instanceId}`, escaped.
pub fn locator_sk(instance_id: &str) -> String {
    format!("{LOCATOR_SK_PREFIX}{}", esc(instance_id))
}

/// `APP#{appId}`.
pub fn app_sk(app_id: &str) -> String {
    format!("{APP_SK_PREFIX}{}", esc(app_id))
}

/// `USER#{appId}#`: the prefix of one app's users (the escaped ID holds no `#`, so no other
/// app's users share it).
pub fn users_prefix(app_id: &str) -> String {
    format!("{USER_SK_PREFIX}{}#", esc(app_id))
}

/// `USER#{appId}#{userName}`.
pub fn user_sk(app_id: &str, user_name: &str) -> String {
    format!("{}{}", users_prefix(app_id), esc(user_name))
}

/// `ORG#{generation}#`: the prefix of one generation's departments.
pub fn org_prefix(generation: &str) -> String {
    format!("{ORG_SK_PREFIX}{generation}#")
}

/// `ORG#{generation}#{orgCode}`.
pub fn org_sk(generation: &str, org_code: &str) -> String {
    format!("{}{}", org_prefix(generation), esc(org_code))
}

/// `ORGCHUNK#{generation}#`: the prefix of one generation's chunks.
pub fn chunk_prefix(generation: &str) -> String {
    format!("{ORGCHUNK_SK_PREFIX}{generation}#")
}

/// `ORGCHUNK#{generation}#{index:04}`.
pub fn chunk_sk(generation: &str, index: u32) -> String {
    format!("{}{index:04}", chunk_prefix(generation))
}

/// `EVENT#{seq:020}`: zero-padded so the sort key order is the delivery order.
pub fn event_sk(seq: u64) -> String {
    format!("{EVENT_SK_PREFIX}{seq:020}")
}

/// A stored generation is usable in a key: not empty, no `#`.
pub fn is_generation(g: &str) -> bool {
    !g.is_empty() && !g.contains('#')
}
