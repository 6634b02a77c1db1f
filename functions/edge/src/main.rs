//! Lambda entry point: API Gateway → verify, guard replays, route, invoke the callback function, sign.

use koogallery_lambda::{Error, init_tracing, load};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing()?;
    edge::lambda::run(load(edge::lambda::LOAD).await?).await
}
