//! `koogallery-sim load`: signed calls at a steady rate, and the report of what was answered.

use std::process::ExitCode;
use std::time::Duration;

use super::args::LoadArgs;
use super::fail;

/// `koogallery-sim load`: runs the load and prints its report.
pub async fn load(args: LoadArgs) -> ExitCode {
    let LoadArgs {
        target,
        activity,
        connections,
        duration,
        rate,
        instance_id,
    } = args;
    let opts = koogallery_sim::load::LoadOptions {
        activity,
        connections,
        duration: Duration::from_secs(duration),
        rate,
        instance_id,
    };
    match koogallery_sim::load::run_load(&target.url, &target.key, &opts).await {
        Ok(report) => {
            println!("{report}");
            if report.unexpected == 0 && report.requests > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => fail(&e),
    }
}
