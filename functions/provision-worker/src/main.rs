//! Lambda entry point: SQS → provisioning and lifecycle notices, with partial batch failures.

use koogallery_lambda::{Error, init_tracing, load};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing()?;
    provision_worker::lambda::run(load(provision_worker::lambda::LOAD).await?).await
}
