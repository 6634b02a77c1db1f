//! [`InstanceListing`] on the table: the operator's listings of instances by customer, order,
//! state, product or SKU, and time.
//!
//! # Why a `Scan`
//!
//! A listing is an operator's occasional question ("which instances does this buyer have?") on a
//! vendor's table of some thousands of instances, not a path KooGallery's calls take. So it is one
//! paginated, consistent `Scan` of the instance items (`sk = "INSTANCE"`), filtered in DynamoDB on
//! what the instance item already carries as plain attributes (`order_id`, `state`, when the
//! filter names them), with only `pk`, `version` and `data` projected. The rest of the filter
//! (customer, product or SKU, creation time) is in the `data` JSON: each page is decoded and
//! [`InstanceFilter::matches`] decides, and at most the filter's limit, newest first, is kept
//! between pages ([`InstanceFilter::select`]).
//!
//! The cost is the whole table, whatever matches: a filter expression reduces what comes back,
//! not what is read. A listing reads every item of the table once (events, usage, directory
//! records included): strongly consistent, one read unit per 4 KB scanned, so a table of 40 MB
//! (some thousands of instances with their histories) costs about 10 000 RCU and a few seconds
//! per listing, which an operator's occasional look can afford on on-demand capacity.
//!
//! If listings by customer became frequent, or the table grew to where a scan is slow, the
//! instance item would carry a `customer_id` attribute (written by `instance_item` once Query
//! Order has been read), keyed by a sparse global secondary index (`customer_id`, `created_at`):
//! one `Query` per customer, newest first. Orders already have their key: the order line item
//! `ORDERLINE#{orderId}#…`.
//!
//! The action this needs beyond the callbacks' is `dynamodb:Scan` on the table
//! ([`operator_iam_actions`](super::operator_iam_actions)); the template grants it to no function
//! today.

use async_trait::async_trait;
use koogallery::{
    StoreError,
    instance::Instance,
    operator::{InstanceFilter, InstanceListing},
};

use super::{
    DynamoStore,
    attr::s,
    items::decode_instance,
    keys::{DATA, INSTANCE_SK, ORDER_ID, PK, SK, STATE, VERSION},
};

/// The scan's filter expression and its values: the instance items, and the plain attributes
/// `filter` names.
fn filter_expression(filter: &InstanceFilter) -> (String, Vec<(&'static str, String)>) {
    let mut terms = vec!["#sk = :sk"];
    let mut values = vec![(":sk", INSTANCE_SK.to_owned())];
    if let Some(order_id) = &filter.order_id {
        terms.push("#order_id = :order_id");
        values.push((":order_id", order_id.clone()));
    }
    if let Some(state) = filter.state {
        terms.push("#state = :state");
        values.push((":state", state.as_str().to_owned()));
    }
    (terms.join(" AND "), values)
}

#[async_trait]
impl InstanceListing for DynamoStore {
    /// One paginated `Scan` (see the module docs).
    async fn list_instances(&self, filter: &InstanceFilter) -> Result<Vec<Instance>, StoreError> {
        let (expression, values) = filter_expression(filter);
        let mut scan = self
            .table
            .client()
            .scan()
            .table_name(self.table.name())
            .consistent_read(true)
            .filter_expression(expression)
            .projection_expression("#pk, #version, #data")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_names("#version", VERSION)
            .expression_attribute_names("#data", DATA);
        if filter.order_id.is_some() {
            scan = scan.expression_attribute_names("#order_id", ORDER_ID);
        }
        if filter.state.is_some() {
            scan = scan.expression_attribute_names("#state", STATE);
        }
        for (name, value) in values {
            scan = scan.expression_attribute_values(name, s(value));
        }
        let mut kept: Vec<Instance> = Vec::new();
        let pages = self
            .table
            .scan_pages(scan, "Scan (instance listing)", |items| {
                let found = items
                    .iter()
                    .map(decode_instance)
                    .collect::<Result<Vec<_>, _>>()?;
                // At most the limit is kept between pages, newest first.
                kept = filter.select(std::mem::take(&mut kept).into_iter().chain(found));
                Ok(())
            })
            .await?;
        tracing::debug!(
            pages,
            found = kept.len(),
            "instance listing scanned the table"
        );
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use koogallery::instance::InstanceState;

    use super::*;

    #[test]
    fn the_scan_filters_on_the_plain_attributes_the_filter_names() {
        let (e, v) = filter_expression(&InstanceFilter::default());
        assert_eq!(e, "#sk = :sk");
        assert_eq!(v, [(":sk", "INSTANCE".to_owned())]);

        let (e, v) = filter_expression(&InstanceFilter {
            order_id: Some("CS1".into()),
            state: Some(InstanceState::Active),
            customer_id: Some("c".into()),
            ..InstanceFilter::default()
        });
        assert_eq!(e, "#sk = :sk AND #order_id = :order_id AND #state = :state");
        assert_eq!(
            v,
            [
                (":sk", "INSTANCE".to_owned()),
                (":order_id", "CS1".to_owned()),
                (":state", InstanceState::Active.as_str().to_owned()),
            ]
        );
    }
}
