//! What several of the embedded store's test files share.

use std::path::{Path, PathBuf};

/// A copy, in `dir`, of the store file an earlier release wrote (commit 5a1291d; see
/// `durability.rs` for what it holds): a test opens the copy, never the fixture itself.
pub fn copy_of_earlier_release(dir: &Path) -> PathBuf {
    let path = dir.join("old.redb");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/written-by-5a1291d.redb"
    );
    std::fs::copy(fixture, &path).expect("the fixture is copied");
    path
}
