//! The Node.js verifier in examples/verify.mjs (what the README quotes) agrees with this crate on
//! the golden token: Node's standard library alone verifies what the Rust issuer signs.

use std::path::{Path, PathBuf};
use std::process::Command;

const NOW: &str = "1767312000"; // inside the golden token's offline window

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The script's exit code, or `None` when `node` is not installed.
fn node_verify(token: &str, now: &str) -> Option<i32> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/verify.mjs");
    let output = match Command::new("node")
        .arg(script)
        .arg(fixture("jwks_v1.json"))
        .arg(token)
        .arg(now)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("skipped: `node` is not on PATH");
            return None;
        }
        Err(e) => panic!("cannot run node: {e}"),
    };
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    output.status.code()
}

fn golden_token() -> String {
    std::fs::read_to_string(fixture("token_v1.txt"))
        .unwrap()
        .trim_end()
        .to_owned()
}

#[test]
fn node_accepts_the_golden_token() {
    let Some(code) = node_verify(&golden_token(), NOW) else {
        return;
    };
    assert_eq!(code, 0);
    // The @file form, as the CLI takes it.
    let at_file = format!("@{}", fixture("token_v1.txt").display());
    assert_eq!(node_verify(&at_file, NOW), Some(0));
}

#[test]
fn node_rejects_a_tampered_token() {
    let token = golden_token();
    // The payload with its status changed, the signature kept.
    let (_, rest) = token.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let json = String::from_utf8(b64.decode(payload).unwrap()).unwrap();
    let forged = format!(
        "KGL1.{}.{signature}",
        b64.encode(json.replace("ACTIVE", "FROZEN"))
    );
    let Some(code) = node_verify(&forged, NOW) else {
        return;
    };
    assert_eq!(code, 2);
    // And after the offline window.
    assert_eq!(node_verify(&token, "1767830401"), Some(2));
}

/// A token that verifies but whose license is not usable: exit code 1.
#[cfg(feature = "issue")]
#[test]
fn node_reports_a_frozen_license_as_not_usable() {
    use koogallery_license_token::{Claims, Issuer, Status};
    let issuer = Issuer::from_secret("kgl-2026-01", core::array::from_fn(|i| i as u8 + 1));
    let token = issuer.issue(&Claims {
        v: 1,
        kid: "kgl-2026-01".into(),
        code: "PL0000001".into(),
        product: None,
        status: Status::Frozen,
        client: "client-42".into(),
        iat: 1_767_225_600,
        exp: None,
        offline_until: 1_767_830_400,
    });
    let Some(code) = node_verify(&token, NOW) else {
        return;
    };
    assert_eq!(code, 1);
}
