//! The table's IAM policy: the actions and the partition keys each kind of store access needs,
//! which `template.yaml` grants each function (`tests/template.rs` holds the two together).

use koogallery::callbacks::StoreAccess;

/// The table actions a callback's store access needs: exactly what its IAM role grants
/// (`template.yaml`, checked by `tests/template.rs`). `TransactWriteItems` is authorised per item, as
/// `PutItem` and `ConditionCheckItem`.
pub fn iam_actions(access: StoreAccess) -> &'static [&'static str] {
    match access {
        StoreAccess::ReadOne => &["dynamodb:GetItem"],
        // queryInstance: the instances, and their usage for `usageInfo` (windows by Query).
        StoreAccess::ReadMany => &[
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:Query",
        ],
        StoreAccess::Update => &["dynamodb:GetItem", "dynamodb:PutItem"],
        StoreAccess::Create => &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:ConditionCheckItem",
        ],
        StoreAccess::Notices => &["dynamodb:GetItem", "dynamodb:PutItem"],
        // The Kit syncs (`DynamoDirectory`): reads and queries of one tenant's partition, batch
        // writes of its records, the transaction that numbers its events.
        // TransactWriteItems is authorised per item (PutItem, DeleteItem, ConditionCheckItem).
        StoreAccess::Directory => &[
            "dynamodb:BatchGetItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:ConditionCheckItem",
            "dynamodb:DeleteItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
        ],
        // The License callbacks: one code's record, read then written conditionally.
        StoreAccess::Licenses => &["dynamodb:GetItem", "dynamodb:PutItem"],
    }
}

/// The table actions the operator's instance views need (the admin function's role, on
/// [`OPERATOR_LEADING_KEYS`]): the listing's `Scan` ([`InstanceListing`](koogallery::operator::InstanceListing),
/// see `listing.rs`), an instance's record (`GetItem`) and its history (`Query`). The same `Scan`
/// finds an instance's 联营 tenants (`directory/instance_tenants.rs`) and its order's License codes
/// (`license/orders.rs`): a `Scan` names no partition key, so the leading-keys condition does not
/// narrow it. No callback is granted `Scan`. The exchange log ([`OPERATOR_EXCHANGE_LOG_ACTIONS`]),
/// the usage windows (`Query` on `USAGE#`), the tenants' records
/// ([`OPERATOR_DIRECTORY_ACTIONS`]), their SSO sessions ([`OPERATOR_SESSION_ACTIONS`]) and a
/// reconciler pass on demand (the reconciler's own) need their stores' actions besides;
/// `tests/template.rs` checks the role against these.
pub fn operator_iam_actions() -> &'static [&'static str] {
    &["dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"]
}

/// The partition keys a function with `access` may touch (the `dynamodb:LeadingKeys` condition
/// of its role): instances (debug ones included), and order lines for the one that creates them;
/// never the edge's nonces. `tests/template.rs` checks the template against this.
pub fn leading_keys(access: StoreAccess) -> &'static [&'static str] {
    match access {
        StoreAccess::Create => &["INSTANCE#*", "ORDERLINE#*"],
        StoreAccess::ReadMany => &["INSTANCE#*", "USAGE#*", "USAGEPKG#*"],
        StoreAccess::ReadOne | StoreAccess::Update => &["INSTANCE#*"],
        StoreAccess::Notices => &["ORDERNOTICE#*"],
        StoreAccess::Directory => &["DIR#*"],
        StoreAccess::Licenses => &["LICENSE#*"],
    }
}

/// What the edge's role may do to keep the exchange log ([`super::DynamoExchangeLog`]'s
/// appends: conditional puts), on [`EXCHANGE_LOG_LEADING_KEYS`] only. Reading the log is for an
/// operator, not for a function.
pub const EXCHANGE_LOG_ACTIONS: &[&str] = &["dynamodb:PutItem"];

/// The partitions of the operator's instance views.
pub const OPERATOR_LEADING_KEYS: &[&str] = &["INSTANCE#*"];

/// What the admin function's role may do to the exchange log: read it (`Query`) and keep the
/// operator's actions in it (conditional puts, as the edge's).
pub const OPERATOR_EXCHANGE_LOG_ACTIONS: &[&str] = &["dynamodb:Query", "dynamodb:PutItem"];

/// The exchange log's partitions (`XLOG#I#`, `XLOG#O#`, `XLOG#T#`).
pub const EXCHANGE_LOG_LEADING_KEYS: &[&str] = &["XLOG#*"];

/// What the admin function's role may read of the tenant directory (on the directory's
/// `DIR#` partitions, [`crate::directory::keys::LEADING_KEYS`]): an instance's tenants' apps and
/// users (`Query`), their department set (`GetItem` of `ORGSET`, `BatchGetItem` of its chunks, a
/// `Query` of a set written before the chunks). Read only: no client secret is opened.
pub const OPERATOR_DIRECTORY_ACTIONS: &[&str] = &[
    "dynamodb:BatchGetItem",
    "dynamodb:GetItem",
    "dynamodb:Query",
];

/// What the admin function's role may read of SSO: a tenant's session index (`Query`), on
/// [`OPERATOR_SESSION_LEADING_KEYS`]. Its tokens stay sealed: the role has no key to open them.
pub const OPERATOR_SESSION_ACTIONS: &[&str] = &["dynamodb:Query"];

/// The partitions of the tenants' session indexes (`SSO#{instanceId}#{tenantId}`).
pub const OPERATOR_SESSION_LEADING_KEYS: &[&str] = &["SSO#*"];
