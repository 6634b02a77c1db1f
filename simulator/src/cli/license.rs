//! `koogallery-sim license`: one License code through its life against the vendor's host
//! (docs/protocol/openapi.md §5, §6), reported step by step like the lifecycle.

use std::process::ExitCode;

use koogallery_sim::license_walk::{LicenseWalk, new_test_code, walk};

use super::args::LicenseArgs;
use super::fail;

/// `koogallery-sim license`: exits 0 when every step passed.
pub async fn license(args: LicenseArgs) -> ExitCode {
    let LicenseArgs {
        target,
        client_key,
        code,
        openapi,
    } = args;
    let opts = LicenseWalk {
        url: target.url,
        key: target.key,
        client_key,
        code: code.unwrap_or_else(new_test_code),
        openapi: Some(openapi),
    };
    println!(
        "License code walk against {} (KooGallery's open API at {})",
        opts.url,
        opts.openapi.as_deref().unwrap_or("-")
    );
    match walk(&opts).await {
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
