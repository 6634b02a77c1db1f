//! [`KitTenants`] on the table: the operator's look at an instance's 联营 tenants, each with its
//! apps, users and departments.
//!
//! # Why a `Scan`
//!
//! A tenant's partition is keyed by (instanceId, tenantId), and the only index of tenants is the
//! locator, by tenantId (the unified login's lookup); nothing is keyed by the instance alone. An
//! operator looks at one instance now and then ("I can't log in"), on a vendor's table of some
//! thousands of instances; KooGallery's calls never ask this. So the tenants are found by one
//! paginated, strongly consistent `Scan` filtered in DynamoDB to the `TENANT` items whose
//! partition starts with `DIR#{instanceId}#` (escaped: `#` only ever separates, so no other
//! instance's tenant shares the prefix), then each tenant's records are read as the directory
//! reads them: a `Query` of its apps, a `Query` of its users (`USER#`, every app), a `GetItem` of
//! `ORGSET` and a `BatchGetItem` of its department chunks.
//!
//! The cost is the whole table, whatever matches: the filter cuts what comes back, not what is
//! read. A look reads every item of the table once (instances, events, usage, exchanges, the
//! other tenants' records included): one read unit per 4 KB scanned, so a table of 40 MB costs
//! about 10 000 RCU and a few seconds, as an instance listing does (`dynamo/listing.rs`); the
//! instance page pays it once for the tenants, and once more for the License codes of the order
//! (`license/orders.rs`), the two scans side by side.
//!
//! If the page were opened often, or the table grew to where a scan is slow, the tenant would get
//! a second locator item keyed by its instance (partition `DIR#{instanceId}`, sort key
//! `INSTANCETENANT#{tenantId}`, apart from the tenant locator's `TENANT#` items that share the
//! partition's shape), put and deleted in the transaction that writes `TENANT` as the tenant
//! locator is, and this would be one `Query`; tenants stored before it would need a backfill from
//! their `TENANT` items.
//!
//! Beyond the directory's reads on `DIR#` partitions
//! ([`OPERATOR_DIRECTORY_ACTIONS`](crate::dynamo::OPERATOR_DIRECTORY_ACTIONS)), this needs
//! `dynamodb:Scan` on the table ([`operator_iam_actions`](crate::dynamo::operator_iam_actions)):
//! the admin function's role has both.

use async_trait::async_trait;
use koogallery::{
    StoreError,
    directory::{TenantKey, User},
    operator::{KitTenant, KitTenants},
};

use super::{
    DynamoDirectory,
    items::{decode_tenant_item, decode_user_item},
    keys::*,
    requests::SkRange,
};
use crate::dynamo::{
    attr::{Item, string_attr},
    keys::{PK, SK, escape_component as esc, unescape_component},
};

/// `DIR#{instanceId}#`, escaped: what every tenant partition of the instance starts with.
fn instance_prefix(instance_id: &str) -> String {
    format!("{DIR_PK_PREFIX}{}#", esc(instance_id))
}

fn corrupt(item: &Item, m: &str) -> StoreError {
    let pk = string_attr(item, PK).unwrap_or("?");
    let sk = string_attr(item, SK).unwrap_or("?");
    StoreError::Corrupt(format!("directory item {pk}/{sk}: {m}").into())
}

/// The tenant ID of a tenant partition of the instance whose prefix is `prefix`.
fn tenant_id_of(item: &Item, prefix: &str) -> Result<String, StoreError> {
    let pk = string_attr(item, PK).map_err(|m| corrupt(item, &m))?;
    pk.strip_prefix(prefix)
        .and_then(unescape_component)
        .map(|t| t.into_owned())
        .ok_or_else(|| corrupt(item, "not a tenant partition of the instance scanned for"))
}

/// A user item of any app: its app from its key (`USER#{appId}#{userName}`), its record checked
/// against it.
fn decode_any_user_item(item: &Item) -> Result<User, StoreError> {
    let sk = string_attr(item, SK).map_err(|m| corrupt(item, &m))?;
    let app_id = sk
        .strip_prefix(USER_SK_PREFIX)
        .and_then(|rest| rest.split_once('#'))
        .and_then(|(app, _)| unescape_component(app))
        .ok_or_else(|| corrupt(item, "not a user's key"))?;
    decode_user_item(item, &app_id)
}

impl DynamoDirectory {
    /// The tenant's users of every app.
    async fn read_all_users(&self, key: &TenantKey) -> Result<Vec<User>, StoreError> {
        self.query(
            &tenant_pk(key),
            SkRange::Prefix(USER_SK_PREFIX),
            false,
            None,
        )
        .await?
        .iter()
        .map(decode_any_user_item)
        .collect()
    }
}

#[async_trait]
impl KitTenants for DynamoDirectory {
    /// One `Scan`, then each tenant's records (see the module docs).
    async fn kit_tenants(&self, instance_id: &str) -> Result<Vec<KitTenant>, StoreError> {
        let prefix = instance_prefix(instance_id);
        let items = self
            .table
            .scan_records(&prefix, TENANT_SK, "Scan (an instance's tenants)")
            .await?;
        let mut found = Vec::with_capacity(items.len());
        for item in &items {
            let key = TenantKey::new(instance_id, tenant_id_of(item, &prefix)?);
            let tenant = decode_tenant_item(item)?;
            found.push(
                KitTenant {
                    apps: self.read_apps(&key).await?,
                    users: self.read_all_users(&key).await?,
                    departments: self.read_departments(&key).await?,
                    tenant,
                    key,
                }
                .sorted(),
            );
        }
        found.sort_by(|a, b| a.key.tenant_id.cmp(&b.key.tenant_id));
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::attr::{key_of, s};

    #[test]
    fn a_tenant_partition_gives_back_its_tenant_id_and_no_other_instance_shares_its_prefix() {
        let key = TenantKey::new("i#1%", "t#2%");
        let prefix = instance_prefix(&key.instance_id);
        let item = key_of(tenant_pk(&key), TENANT_SK);
        assert_eq!(tenant_id_of(&item, &prefix).unwrap(), "t#2%");
        // An instance whose ID starts with this one's, or is this one's and a tenant's.
        for other in [
            TenantKey::new("i#1%x", "t"),
            TenantKey::new("i#1%#t#2%", "t"),
        ] {
            assert!(!tenant_pk(&other).starts_with(&prefix), "{other:?}");
        }
        let mut user = key_of(tenant_pk(&key), user_sk("app#1", "amy%"));
        user.insert(
            crate::dynamo::keys::DATA.to_owned(),
            s(
                String::from_utf8(koogallery::directory::record::encode_user(
                    &koogallery::testing::directory::sample_user(
                        "app#1",
                        "amy%",
                        chrono::Utc::now(),
                    ),
                ))
                .unwrap(),
            ),
        );
        assert_eq!(decode_any_user_item(&user).unwrap().app_id, "app#1");
    }
}
