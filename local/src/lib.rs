//! The local host: the same edge, callbacks and worker as on AWS, in one process on the embedded,
//! file-backed store and queue. `make run` starts it; the end-to-end tests start it in-process.

mod admin;
pub mod admin_cli;
mod assemble;
#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod aws_signing;
pub mod backup_archive;
pub mod cli;
#[cfg(feature = "aws")]
pub mod console_proxy;
mod embedded;
mod exchanges;
mod health;
mod http;
mod keys;
mod license_api;
mod license_upload;
pub mod operator_cli;
mod process;
mod running;
mod schedule;
pub mod server;
mod settings;
mod sso;
mod usage_api;

pub use admin::{AdminRoutes, AdminToken, admin_router};
pub(crate) use assemble::{Extras, assemble};
pub use embedded::{Embedded, RunningHost, start, start_on, start_with};
pub use health::{Health, health_router};
pub use http::router;
pub(crate) use http::serve;
pub use keys::{local_kit_key, local_sealer, print_kit_public_key};
pub use license_api::{LicenseRoutes, license_api, license_router, local_token_keys};
pub use license_upload::license_upload_command;
pub use process::{local_metrics, main_from_env, run_from_env};
pub use running::{Backend, Running};
pub(crate) use schedule::{push_every, reconcile_every, reconciler, usage_pusher};
pub use settings::{LocalSettings, SsoHostSettings, StartError};
pub(crate) use sso::provider as sso_provider;
pub use sso::{oidc_client_command, sso_router};
pub(crate) use usage_api::json_answer;
pub use usage_api::{UsageApi, usage_router};
