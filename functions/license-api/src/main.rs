//! Lambda entry point: API Gateway `/license/*` → the license service (activate, check, keys,
//! upload).

use koogallery_lambda::{Error, init_tracing, load};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing()?;
    let deployment = load(license_api::LOAD).await?;
    license_api::run(deployment).await
}
