//! `koogallery-license`: checks a license token against a published key set, as the vendor's
//! software would offline.
//!
//! Exit codes: 0 the token verifies and the license is usable now; 1 it verifies but the license is
//! not usable (frozen, expired, released, or an unknown status); 2 it does not verify, or the
//! command could not run (bad arguments, unreadable key set).

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use koogallery_license_token::{keys_from_jwks, verify};

#[derive(Parser)]
#[command(
    name = "koogallery-license",
    version,
    about = "Checks KooGallery license tokens offline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verifies a token with the published keys; prints its claims and whether it is usable now.
    Check {
        /// The published JWK set (JSON file).
        #[arg(long)]
        keys: std::path::PathBuf,
        /// The token, or @PATH to read it from a file.
        #[arg(long)]
        token: String,
        /// The time to check at, unix seconds (default: the system clock).
        #[arg(long)]
        now: Option<u64>,
    },
}

fn main() -> ExitCode {
    let Command::Check { keys, token, now } = Cli::parse().command;
    match check(&keys, &token, now) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("koogallery-license: {message}");
            ExitCode::from(2)
        }
    }
}

/// Whether the token verifies and is usable; `Err` with a message when it does not verify.
fn check(keys: &std::path::Path, token: &str, now: Option<u64>) -> Result<bool, String> {
    let jwks = std::fs::read_to_string(keys)
        .map_err(|e| format!("cannot read key set {}: {e}", keys.display()))?;
    let keys = keys_from_jwks(&jwks).map_err(|e| format!("key set {}: {e}", keys.display()))?;
    let token = match token.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read token file {path}: {e}"))?,
        None => token.to_owned(),
    };
    let now = match now {
        Some(now) => now,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| format!("system clock before 1970: {e}"))?
            .as_secs(),
    };
    // A token file usually ends with a newline.
    let verified = verify(token.trim(), &keys, now).map_err(|e| e.to_string())?;
    let usable = verified.usable_at(now);
    let report = serde_json::json!({ "claims": verified.claims(), "usable": usable });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
    );
    Ok(usable)
}
