//! Golden files of the versioned contracts (`shared/tests/fixtures/`): a value's pretty JSON must
//! equal its file; `UPDATE_GOLDEN=1` rewrites the file (review the diff: a stored record or an event
//! that changes form is a new schema, never a silent rename).

/// Compares `value`, pretty-printed, with `shared/tests/fixtures/{name}` (this crate's unit tests).
///
/// # Panics
/// When they differ, or the file is missing (and `UPDATE_GOLDEN` is unset).
#[cfg(test)]
pub fn check(name: &str, value: &serde_json::Value) {
    check_in(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
        name,
        value,
    );
}

/// [`check`] against `{fixtures}/{name}`, for another crate's contracts (its own fixtures folder).
/// The switch is the test's environment (`UPDATE_GOLDEN`), never a setting of the service.
///
/// # Panics
/// When they differ, or the file is missing (and `UPDATE_GOLDEN` is unset).
pub fn check_in(fixtures: &std::path::Path, name: &str, value: &serde_json::Value) {
    let path = fixtures.join(name);
    let pretty = serde_json::to_string_pretty(value).expect("JSON") + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &pretty).expect("write golden file");
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        pretty, expected,
        "{name} changed: it is a versioned contract"
    );
}

/// [`check_in`] for a contract that is bytes, not JSON (a file's framing): `bytes` must equal
/// `{fixtures}/{name}`. Returns the file's bytes, for the test to decode what is pinned.
///
/// # Panics
/// When they differ, or the file is missing (and `UPDATE_GOLDEN` is unset).
pub fn check_bytes_in(fixtures: &std::path::Path, name: &str, bytes: &[u8]) -> Vec<u8> {
    let path = fixtures.join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, bytes).expect("write golden file");
    }
    let pinned = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert!(
        pinned == bytes,
        "{name} changed: it is a versioned contract"
    );
    pinned
}
