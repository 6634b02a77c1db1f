//! `koogallery-sim usage` and `estimate`: usage reported to the vendor's host, and its bill
//! estimate beside KooGallery's own.

use std::process::ExitCode;

use koogallery_sim::Simulator;

use super::args::{EstimateArgs, Target, UsageArgs};
use super::{fail, problem};

/// The host's `/usage` endpoint: the production URL without its `/produce` path.
fn usage_url(target: &Target) -> String {
    let mut url = target.url.clone();
    if let Some(i) = url.rfind("/produce") {
        url.truncate(i);
    }
    format!("{}/usage", url.trim_end_matches('/'))
}

/// `koogallery-sim usage`: reports usage, prints the ingestion rate and what KooGallery received.
pub async fn usage(args: UsageArgs) -> ExitCode {
    let UsageArgs {
        target,
        usage_key,
        mut instances,
        records,
        batch,
        connections,
        openapi,
    } = args;
    if instances.is_empty() {
        let sim = match Simulator::new(&target.url, &target.key) {
            Ok(s) => s,
            Err(e) => return fail(&e),
        };
        match koogallery_sim::load::ready_instance(&sim).await {
            Ok(id) => instances.push(id),
            Err(e) => return fail(&e),
        }
    }
    let opts = koogallery_sim::usage::UsageDrive {
        url: usage_url(&target),
        usage_key,
        instances,
        records,
        batch,
        connections,
    };
    let report = match koogallery_sim::usage::drive(&opts).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("koogallery-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{report}");
    if let Some(openapi) = openapi {
        match koogallery_sim::usage::received(&openapi).await {
            Ok(table) => print!("{table}"),
            Err(e) => eprintln!("koogallery-sim: cannot read {openapi}: {e}"),
        }
    }
    if report.refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `koogallery-sim estimate`: the vendor's estimate, and KooGallery's own bill beside it.
pub async fn estimate(args: EstimateArgs) -> ExitCode {
    let EstimateArgs {
        target,
        usage_key,
        instance,
        from,
        to,
        openapi,
        pricing,
    } = args;
    let client = match koogallery_sim::usage::UsageClient::new(&usage_url(&target), &usage_key) {
        Ok(c) => c,
        Err(e) => return problem(&e),
    };
    let answer = match client
        .estimate(&instance, from.as_deref(), to.as_deref())
        .await
    {
        Ok(a) => a,
        Err(e) => return problem(&e),
    };
    println!(
        "vendor's estimate (HTTP {}): {}",
        answer.status, answer.body
    );
    if answer.status != 200 {
        return ExitCode::FAILURE;
    }
    let (Some(openapi), Some(pricing)) = (openapi, pricing) else {
        return ExitCode::SUCCESS;
    };
    koogallery_bill(&answer.body, &instance, &openapi, &pricing).await
}

/// KooGallery's own bill, beside the vendor's estimate: the usage records the simulated open API
/// (`openapi`) accepted for `instance` over the period the estimate names, priced with
/// `pricing` (the SKU's pricing as JSON).
async fn koogallery_bill(
    estimate: &serde_json::Value,
    instance: &str,
    openapi: &str,
    pricing: &str,
) -> ExitCode {
    let pricing: koogallery_sim::usage::Price = match serde_json::from_str(pricing)
        .map_err(|e| e.to_string())
        .and_then(|p: koogallery_sim::usage::Price| p.check().map(|()| p))
    {
        Ok(p) => p,
        Err(e) => return problem(&format!("--pricing: {e}")),
    };
    // The period the vendor's answer names (`to` exclusive), so both cover the same records.
    let time = |k: &str| {
        estimate[k]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.to_utc())
    };
    let (Some(from), Some(to)) = (time("from"), time("to")) else {
        return problem(&"the estimate names no period");
    };
    let accepted = match koogallery_sim::usage::accepted(openapi).await {
        Ok(a) => a,
        Err(e) => return problem(&e),
    };
    match koogallery_sim::usage::koogallery_bill(&accepted, instance, from, to, &pricing) {
        Ok((quantity, amount)) => {
            println!(
                "KooGallery's bill from the records it accepted: quantity {quantity}, amount {amount}"
            );
            ExitCode::SUCCESS
        }
        Err(e) => problem(&e),
    }
}
