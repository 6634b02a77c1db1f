//! Lambda entry point: API Gateway → KooGallery's login address and the OIDC provider.

use koogallery_lambda::{Error, init_tracing, load};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing()?;
    sso::lambda::run(load(sso::lambda::LOAD).await?).await
}
