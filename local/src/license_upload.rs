//! `koogallery-local license-upload`: the string / file-stream upload (docs/protocol/openapi.md §4)
//! from the seller's shell, with the host's own configuration (`Config::from_env`) and open-API
//! client, for a delivery made by hand or from a script without going through `POST /license/upload`.
//!
//! ```text
//! koogallery-local license-upload --event-id ID (--characters TEXT | --file PATH)
//! ```
//! Exit 0 when KooGallery took it; 1 when it refused, cannot be reached, or no AK/SK is
//! configured; 2 for bad arguments. Messages go to stderr and never hold the AK/SK or the
//! characters sent.

use std::process::ExitCode;

use koogallery::config::Config;
use koogallery::license::{
    LicenseMarketplace, Upload,
    upload::{check, describe},
};

/// What to upload, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Characters(String),
    File(std::path::PathBuf),
}

const USAGE: &str = "usage: license-upload --event-id ID (--characters TEXT | --file PATH)";

/// The event ID and the source from the arguments after `license-upload`.
///
/// # Errors
/// What is wrong, with the usage line.
pub fn parse_args(args: &[String]) -> Result<(String, Source), String> {
    let (mut event_id, mut source) = (None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let (slot_filled, what) = match flag.as_str() {
            "--event-id" => (event_id.replace(value()?).is_some(), flag),
            "--characters" => (source.replace(Source::Characters(value()?)).is_some(), flag),
            "--file" => (
                source.replace(Source::File(value()?.into())).is_some(),
                flag,
            ),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        };
        if slot_filled {
            return Err(format!(
                "{what} given twice (or --characters with --file)\n{USAGE}"
            ));
        }
    }
    match (event_id, source) {
        (Some(e), Some(s)) => Ok((e, s)),
        _ => Err(USAGE.to_owned()),
    }
}

/// The upload a source names: the characters, or the file read whole under its own name.
fn read(source: Source) -> Result<Upload, String> {
    match source {
        Source::Characters(c) => Ok(Upload::Characters(c)),
        Source::File(path) => {
            let bytes =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| format!("{} names no file", path.display()))?;
            Ok(Upload::File { name, bytes })
        }
    }
}

/// `koogallery-local license-upload …`.
pub async fn license_upload_command(program: &str, args: &[String]) -> ExitCode {
    let fail = |code: u8, e: &dyn std::fmt::Display| {
        eprintln!("{program}: {e}");
        ExitCode::from(code)
    };
    let (event_id, source) = match parse_args(args) {
        Ok(a) => a,
        Err(e) => return fail(2, &e),
    };
    let upload = match read(source) {
        Ok(u) => u,
        Err(e) => return fail(2, &e),
    };
    if let Err(e) = check(event_id.trim(), &upload) {
        return fail(2, &e);
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return fail(1, &e),
    };
    // The seller's own AK/SK: KooGallery takes the upload in the seller's name.
    let client = match koogallery_openapi::client_for(
        &config.settings.marketplace,
        config.secrets.open_api.as_ref(),
        // A one-off command of its own process, with no exchange log open.
        &koogallery::exchange::ExchangeRecorder::off(),
    ) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return fail(
                1,
                &"KooGallery's open API is not configured: set KOOGALLERY_AK and KOOGALLERY_SK \
                  (the seller's credentials)",
            );
        }
        Err(e) => return fail(1, &e),
    };
    match client.upload(event_id.trim(), &upload).await {
        Ok(()) => {
            println!(
                "uploaded to KooGallery for event {}: {}",
                event_id.trim(),
                describe(&upload)
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, &format!("upload not delivered: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn an_event_and_one_source() {
        assert_eq!(
            parse_args(&args(&["--event-id", "ev1", "--characters", "KEY 1"])),
            Ok(("ev1".into(), Source::Characters("KEY 1".into())))
        );
        assert_eq!(
            parse_args(&args(&["--file", "/tmp/a.lic", "--event-id", "ev1"])),
            Ok(("ev1".into(), Source::File("/tmp/a.lic".into())))
        );
        for bad in [
            &["--event-id", "ev1"][..],
            &["--characters", "x"],
            &["--event-id", "e", "--characters", "x", "--file", "f"],
            &["--event-id", "e", "--event-id", "f", "--characters", "x"],
            &["--event-id"],
            &["--event-id", "e", "--text", "x"],
            &[],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_file_is_read_under_its_own_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("licence.lic");
        std::fs::write(&path, b"LIC").unwrap();
        assert_eq!(
            read(Source::File(path)),
            Ok(Upload::File {
                name: "licence.lic".into(),
                bytes: b"LIC".to_vec()
            })
        );
        assert!(read(Source::File(dir.path().join("missing"))).is_err());
    }
}
