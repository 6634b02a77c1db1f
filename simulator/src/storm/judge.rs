//! What must hold of the provisionings the webhook received.

use std::collections::BTreeSet;

use super::Provisionings;

/// Exactly one provisioning (one eventId) per instance answered, and none of this storm's for
/// an instance nobody was answered. Requests repeated with the same eventId are the webhook's
/// at-least-once delivery; in a storm without failures there are none, and they are counted.
pub(super) fn judge_provisionings(
    seen: &Provisionings,
    instances: &BTreeSet<String>,
    run: &str,
) -> Vec<String> {
    let mut violations = Vec::new();
    if seen.bad_signatures > 0 {
        violations.push(format!(
            "{} webhook requests with a bad signature (is KOOGALLERY_WEBHOOK_SECRET the same on both sides?)",
            seen.bad_signatures
        ));
    }
    violations.extend(never_provisioned(seen, instances));
    violations.extend(provisioned_twice(seen, instances));
    violations.extend(stray_provisionings(seen, instances, run));
    violations
}

/// Instances answered that no provisioning reached; when none reached the webhook at all, how
/// to point the host at it.
fn never_provisioned(seen: &Provisionings, instances: &BTreeSet<String>) -> Option<String> {
    let never: Vec<&String> = instances
        .iter()
        .filter(|id| !seen.by_instance.contains_key(*id))
        .collect();
    if never.is_empty() {
        return None;
    }
    Some(if seen.by_instance.is_empty() {
        "no provisioning reached the webhook at all: start the host with KOOGALLERY_PROVISIONER=webhook KOOGALLERY_WEBHOOK_URL=<this receiver's URL> KOOGALLERY_WEBHOOK_SECRET=<the same secret>"
            .to_owned()
    } else {
        format!(
            "{} instances never provisioned, e.g. {}",
            never.len(),
            never[0]
        )
    })
}

/// Instances answered that were provisioned under more than one eventId: a duplicate delivery
/// that reached the vendor's provisioning twice.
fn provisioned_twice(seen: &Provisionings, instances: &BTreeSet<String>) -> Option<String> {
    let twice: Vec<String> = seen
        .by_instance
        .iter()
        .filter(|(id, _)| instances.contains(*id))
        .filter_map(|(id, p)| {
            let distinct: BTreeSet<&String> = p.event_ids.iter().collect();
            (distinct.len() > 1).then(|| format!("{id}: {} provisionings", distinct.len()))
        })
        .collect();
    (!twice.is_empty()).then(|| {
        format!(
            "{} instances provisioned more than once, e.g. {}",
            twice.len(),
            twice[0]
        )
    })
}

/// An instance for one of this storm's orders (`run`) that no delivery was answered with: a
/// second instance for a line.
fn stray_provisionings(
    seen: &Provisionings,
    instances: &BTreeSet<String>,
    run: &str,
) -> Option<String> {
    let order_prefix = format!("CS{run}");
    let stray: Vec<&String> = seen
        .by_instance
        .iter()
        .filter(|(id, p)| p.order_id.starts_with(&order_prefix) && !instances.contains(*id))
        .map(|(id, _)| id)
        .collect();
    (!stray.is_empty()).then(|| {
        format!(
            "{} instances provisioned that no delivery was answered with, e.g. {}",
            stray.len(),
            stray[0]
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::Provisioned;
    use super::*;

    #[test]
    fn provisionings_are_judged_per_instance() {
        let instances: BTreeSet<String> = ["storm-R-0", "storm-R-1"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let seen = |pairs: &[(&str, &[&str])]| Provisionings {
            by_instance: pairs
                .iter()
                .map(|(id, evs)| {
                    let provisioned = Provisioned {
                        order_id: "CSR0000001".into(),
                        event_ids: evs.iter().map(|e| (*e).to_owned()).collect(),
                    };
                    ((*id).to_owned(), provisioned)
                })
                .collect(),
            ..Provisionings::default()
        };
        let ok = seen(&[("storm-R-0", &["e1"]), ("storm-R-1", &["e2", "e2"])]);
        assert!(judge_provisionings(&ok, &instances, "R").is_empty());
        assert_eq!((ok.calls(), ok.distinct()), (3, 2));
        let twice = seen(&[("storm-R-0", &["e1", "e3"]), ("storm-R-1", &["e2"])]);
        assert_eq!(judge_provisionings(&twice, &instances, "R").len(), 1);
        let missing = seen(&[("storm-R-0", &["e1"])]);
        assert_eq!(judge_provisionings(&missing, &instances, "R").len(), 1);
        let stray = seen(&[
            ("storm-R-0", &["e1"]),
            ("storm-R-1", &["e2"]),
            ("6b6f6f67-derived", &["e9"]),
        ]);
        assert_eq!(judge_provisionings(&stray, &instances, "R").len(), 1);
        let none = Provisionings::default();
        let v = judge_provisionings(&none, &instances, "R");
        assert!(v[0].contains("KOOGALLERY_PROVISIONER=webhook"), "{v:?}");
    }
}
