//! [`OrderLicenses`] on the table: the operator's look at the License codes of an instance's
//! order.
//!
//! # Why a `Scan`
//!
//! A code's record is keyed by the code alone (`LICENSE#{code}`), and its order is in its `data`
//! (known once the code is activated or issued); no index is keyed by the order. An operator looks
//! at one instance now and then; KooGallery's calls and the vendor's software never ask this. So
//! the codes are found by one paginated, strongly consistent `Scan` filtered in DynamoDB to the
//! record items (`LICENSE#…` / `LICENSE`), each decoded and kept when it names the order, by code.
//!
//! The cost is the whole table, whatever matches: a filter cuts what comes back, not what is read.
//! One look reads every item of the table once: one read unit per 4 KB scanned, a table of 40 MB
//! about 10 000 RCU and a few seconds, as an instance listing (`dynamo/listing.rs`) and the look
//! at the instance's tenants (`directory/instance_tenants.rs`), which the instance page runs beside
//! this one. What comes back is every code's record (a few hundred bytes each), not only the
//! order's: the order is matched here, in the decoded record, never as a substring of its JSON.
//!
//! If the page were opened often, or the table grew to where a scan is slow, the record item would
//! carry its `order_id` as a plain attribute (written by `put` once known), keyed by a sparse
//! global secondary index: one `Query` per order; records written before it would need a
//! backfill.
//!
//! It needs `dynamodb:Scan` on the table, which the admin function's role has
//! ([`operator_iam_actions`](crate::dynamo::operator_iam_actions)); nothing on `LICENSE#`
//! partitions.

use async_trait::async_trait;
use koogallery::{
    StoreError,
    license::{License, LicenseCode},
    operator::OrderLicenses,
};

use super::{DynamoLicenses, corrupt, keys::*};
use crate::dynamo::{
    attr::{Item, string_attr},
    keys::{DATA, PK, unescape_component},
};

/// A record item's License, named in an error by its masked code, never the whole code.
fn decode_scanned(item: &Item) -> Result<License, StoreError> {
    let masked = || {
        string_attr(item, PK)
            .ok()
            .and_then(|pk| pk.strip_prefix(LICENSE_PK_PREFIX))
            .and_then(unescape_component)
            .and_then(|code| LicenseCode::parse(&code).ok())
            .map_or_else(|| "?".to_owned(), |c| c.masked())
    };
    let what = || format!("license record {}", masked());
    let data = string_attr(item, DATA).map_err(|m| corrupt(what(), m))?;
    serde_json::from_str(data).map_err(|e| corrupt(what(), e))
}

#[async_trait]
impl OrderLicenses for DynamoLicenses {
    /// One `Scan` (see the module docs).
    async fn licenses_of_order(&self, order_id: &str) -> Result<Vec<License>, StoreError> {
        let items = self
            .table
            .scan_records(
                LICENSE_PK_PREFIX,
                LICENSE_SK,
                "Scan (an order's license codes)",
            )
            .await?;
        let mut found = Vec::new();
        for item in &items {
            let license = decode_scanned(item)?;
            if license.order_id.as_deref() == Some(order_id) {
                found.push(license);
            }
        }
        found.sort_by(|a, b| a.code.cmp(&b.code));
        Ok(found)
    }
}
