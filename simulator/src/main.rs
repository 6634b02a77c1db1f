//! `koogallery-sim`: play KooGallery against a production URL.
//!
//! ```text
//! koogallery-sim lifecycle --url URL [--key K] [--order-id ID] [--test-flag]
//! koogallery-sim --ca-cert ca.pem lifecycle --url https://HOST/produce   (a host with its own CA)
//! koogallery-sim lifecycle --v1 --url URL [--key K] [--order-id ID] [--test-flag]
//! koogallery-sim call --url URL [--key K] --activity queryInstance --field instanceId=abc
//! koogallery-sim call --url URL [--key K] --body '{"activity":"queryInstance","instanceId":"abc"}'
//! koogallery-sim call --v1 --url URL [--key K] --activity queryInstance --param instanceId=abc
//! koogallery-sim storm --url URL [--key K] --webhook-secret S [--deliveries 10000] [--connections 64]
//! koogallery-sim lifecycle --kit --url URL [--key K] [--kit-key KK] [--users 500] [--orgs 5000]
//! koogallery-sim kit tenant-sync|application-sync|auth-sync|single-org-sync|all-org-sync|public-key
//!     --url URL [--kit-key KK] [--instance-id I] [--tenant-id T] [--flag F] [--users N] [--orgs N]
//! koogallery-sim license --url URL [--key K] --client-key CK [--code PLTEST…] [--openapi URL]
//! ```

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::args::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();

    let cli = Cli::parse();
    if let Some(path) = &cli.ca_cert {
        let trusted = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| koogallery_sim::trust_roots(&pem));
        if let Err(e) = trusted {
            eprintln!("koogallery-sim: --ca-cert {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    match cli.command {
        Command::Lifecycle(args) => cli::lifecycle::lifecycle(args).await,
        Command::Kit(args) => cli::kit::kit_call(args).await,
        Command::License(args) => cli::license::license(args).await,
        Command::Call(args) => cli::call::call(args).await,
        Command::Load(args) => cli::load::load(args).await,
        Command::CeilingServer(args) => cli::load::ceiling_server(args).await,
        Command::Storm(args) => cli::storm::storm(args).await,
        Command::Usage(args) => cli::usage::usage(args).await,
        Command::Estimate(args) => cli::usage::estimate(args).await,
        Command::ServeOpenapi(args) => cli::openapi::serve_openapi(args).await,
    }
}
