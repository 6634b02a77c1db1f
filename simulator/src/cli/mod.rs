//! The `koogallery-sim` command line: its arguments, and one module per command or group of
//! related commands, each with the function `main` calls for it.

pub mod args;
pub mod call;
pub mod kit;
pub mod license;
pub mod lifecycle;
pub mod load;
pub mod openapi;
pub mod storm;
pub mod usage;

use std::process::ExitCode;

/// Prints a failure of a command other than a KooGallery call.
fn problem(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("koogallery-sim: {e}");
    ExitCode::FAILURE
}

fn fail(e: &impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}
