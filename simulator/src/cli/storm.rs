//! `koogallery-sim storm`: the storm's options from the command line, the webhook it serves, and
//! its report.

use std::process::ExitCode;
use std::time::Duration;

use koogallery_sim::storm::StormOptions;

use super::args::{StormArgs, Target};
use super::{fail, problem};

/// `koogallery-sim storm`: the options from the command line, then [`run`].
pub async fn storm(args: StormArgs) -> ExitCode {
    let StormArgs {
        target,
        deliveries,
        duplicates,
        connections,
        rate,
        webhook_listen,
        webhook_secret,
        ready_timeout,
        seed,
    } = args;
    let mut opts = StormOptions {
        deliveries,
        duplicate_share: duplicates,
        connections,
        rate,
        ready_timeout: Duration::from_secs(ready_timeout),
        ..Default::default()
    };
    if let Some(seed) = seed {
        opts.seed = seed;
    }
    run(&target, &opts, webhook_listen, &webhook_secret).await
}

/// `koogallery-sim storm`: serves the webhook, runs the storm, prints the report.
async fn run(
    target: &Target,
    opts: &StormOptions,
    webhook_listen: std::net::SocketAddr,
    webhook_secret: &str,
) -> ExitCode {
    let webhook =
        match koogallery_sim::storm::WebhookReceiver::start(webhook_listen, webhook_secret).await {
            Ok(w) => w,
            Err(e) => {
                return problem(&format!(
                    "cannot serve the webhook on {webhook_listen}: {e}"
                ));
            }
        };
    println!(
        "vendor webhook on {} (the host's KOOGALLERY_WEBHOOK_URL); storm against {}",
        webhook.url(),
        target.url
    );
    match koogallery_sim::storm::run_storm(&target.url, &target.key, opts, &webhook).await {
        Ok(report) => {
            println!("{report}");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => fail(&e),
    }
}
