//! `koogallery-sim lifecycle`: the whole purchase lifecycle against the vendor's URL, with `--kit`
//! a 联营 purchase, with `--v1` a purchase through the V1 GET interface.

use std::process::ExitCode;
use std::time::Duration;

use koogallery_sim::{LifecycleOptions, Simulator};

use super::args::{LifecycleArgs, Target};
use super::fail;
use super::kit::joint_purchase;
use super::openapi::place_order;

/// `koogallery-sim lifecycle`: a 联营 purchase with `--kit`; otherwise the order is placed on
/// `--openapi` if given, then the lifecycle is walked.
pub async fn lifecycle(args: LifecycleArgs) -> ExitCode {
    let LifecycleArgs {
        target,
        order_id,
        test_flag,
        poll_timeout,
        poll_interval,
        openapi,
        kit,
        kit_args,
        v1,
    } = args;
    if kit {
        let order = order_id.unwrap_or_else(koogallery_sim::new_order_id);
        return joint_purchase(
            &target,
            &kit_args,
            &order,
            Duration::from_secs(poll_timeout),
        )
        .await;
    }
    let mut opts = LifecycleOptions {
        test_flag,
        v1,
        poll_timeout: Duration::from_secs(poll_timeout),
        poll_interval: Duration::from_millis(poll_interval),
        ..LifecycleOptions::default()
    };
    if let Some(order_id) = order_id {
        opts.order_id = order_id;
    }
    if let Some(openapi) = openapi
        && let Err(e) = place_order(&openapi, &opts.order_id).await
    {
        eprintln!("koogallery-sim: cannot place the order at {openapi}: {e}");
        return ExitCode::FAILURE;
    }
    run(&target, &opts).await
}

async fn run(target: &Target, opts: &LifecycleOptions) -> ExitCode {
    let sim = match Simulator::new(&target.url, &target.key) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    println!(
        "KooGallery {}lifecycle against {} (order {}{})",
        if opts.v1 { "V1 " } else { "" },
        sim.url(),
        opts.order_id,
        if opts.test_flag { ", testFlag 1" } else { "" }
    );
    let (report, outcome) = sim.run_lifecycle_report(opts).await;
    println!("{report}");
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}
