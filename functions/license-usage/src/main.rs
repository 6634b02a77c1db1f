//! Lambda entry point of the daily license usage statistics (docs/protocol/openapi.md §5.3): each
//! scheduled invocation runs one pass (`koogallery::license::service::usage_pass`), which reports
//! every finished day not yet reported and answers what it did.

use koogallery::{config::SecretPart, license::service::usage_pass};
use koogallery_lambda::{Error, Load, init_tracing, load};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};

/// The seller's AK/SK only: the pass calls KooGallery's License API.
const LOAD: Load = Load {
    secrets: &[SecretPart::OpenApi],
    queue: false,
    sealer: false,
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing()?;
    let d = load(LOAD).await?;
    let exchanges = d.exchange_recorder();
    let marketplace = koogallery_openapi::license_marketplace(
        &d.settings.marketplace,
        d.secrets.open_api.as_ref(),
        &exchanges,
    )?;
    let (licenses, clock) = (d.licenses(), d.clock.clone());
    let metrics = koogallery::metrics::EmfStdout::from_env();
    let (licenses, marketplace, clock, metrics, exchanges) =
        (&licenses, &marketplace, &clock, &metrics, &exchanges);
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
        let pass = usage_pass(
            licenses.as_ref(),
            marketplace.as_ref(),
            clock.now(),
            metrics,
        )
        .await
        .map_err(|e| Error::from(format!("license usage pass: {e}")));
        // Its calls to KooGallery are kept whatever came of the pass.
        koogallery_lambda::flush_exchanges(exchanges).await;
        let pass = pass?;
        Ok::<_, Error>(json!({
            "reported": pass.reported,
            "refused": pass.refused,
            "failed": pass.failed,
        }))
    }))
    .await
}
