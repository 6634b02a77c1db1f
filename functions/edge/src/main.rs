//! Lambda entry point: API Gateway → verify, guard, dispatch to the callback functions, sign.

use koogallery_lambda::{Error, SecretUse, init_tracing, load};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    edge::lambda::run(load(SecretUse::Keys).await?).await
}
