//! The `koogallery-license check` binary: its output and its exit codes (0 usable, 1 not usable,
//! 2 does not verify).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NOW: &str = "1767312000"; // inside the golden token's offline window

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn check(token: &str, now: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_koogallery-license"))
        .arg("check")
        .arg("--keys")
        .arg(fixture("jwks_v1.json"))
        .args(["--token", token, "--now", now])
        .output()
        .unwrap()
}

#[test]
fn golden_token_is_valid_and_usable() {
    let at_file = format!("@{}", fixture("token_v1.txt").display());
    let output = check(&at_file, NOW);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["usable"], true);
    assert_eq!(report["claims"]["code"], "PL0000001");
    assert_eq!(report["claims"]["offlineUntil"], 1_767_830_400);
}

#[test]
fn expired_license_is_valid_but_not_usable() {
    use koogallery_license_token::{Claims, Issuer, Status};
    // The golden key (secret bytes 0x01..=0x20), so the fixture's key set verifies it.
    let issuer = Issuer::from_secret("kgl-2026-01", core::array::from_fn(|i| i as u8 + 1));
    let token = issuer.issue(&Claims {
        v: 1,
        kid: "kgl-2026-01".into(),
        code: "PL0000001".into(),
        product: None,
        status: Status::Expired,
        client: "client-42".into(),
        iat: 1_767_225_600,
        exp: Some(1_767_300_000),
        offline_until: 1_767_830_400,
    });
    let output = check(&token, NOW);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["usable"], false);
    assert_eq!(report["claims"]["status"], "EXPIRED");
}

#[test]
fn tampered_token_does_not_verify() {
    let token = std::fs::read_to_string(fixture("token_v1.txt")).unwrap();
    let forged = token.trim().replacen("KGL1.eyJ2IjoxL", "KGL1.eyJ2IjoyL", 1); // "v":1 → "v":2
    let output = check(&forged, NOW);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(output.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("signature does not verify"),
        "{output:?}"
    );
}

#[test]
fn offline_window_over_does_not_verify() {
    let at_file = format!("@{}", fixture("token_v1.txt").display());
    let output = check(&at_file, "1767830401");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("check online"));
}
