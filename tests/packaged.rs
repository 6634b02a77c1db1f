//! The tarball `make dist` built for this machine's architecture, as the tests that start the
//! packaged host find it: in `KOOGALLERY_DIST_DIR`, checked against `SHA256SUMS`, unpacked into a
//! test's own folder.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use sha2::{Digest, Sha256};

/// `koogallery-<version>-<arch>-linux-musl`, as scripts/dist.sh names it.
pub fn package_name() -> String {
    format!(
        "koogallery-{}-{}-linux-musl",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

pub fn dist_dir() -> PathBuf {
    let Some(dir) = std::env::var_os("KOOGALLERY_DIST_DIR") else {
        panic!(
            "KOOGALLERY_DIST_DIR is not set: this test checks the tarball of `make dist`; run it \
             with `make test`, or `make dist-host` then KOOGALLERY_DIST_DIR=$PWD/dist cargo test \
             -p koogallery-e2e --test dist -- --include-ignored"
        )
    };
    PathBuf::from(dir)
}

/// The tarball's SHA-256 must be its line of SHA256SUMS (`sha256sum`'s format).
pub fn check_checksum(dir: &Path, tarball: &str) {
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS"))
        .unwrap_or_else(|e| panic!("{}/SHA256SUMS: {e}", dir.display()));
    let listed = sums
        .lines()
        .find_map(|line| {
            let (hash, file) = line.split_once("  ")?;
            (file == tarball).then_some(hash)
        })
        .unwrap_or_else(|| panic!("SHA256SUMS has no line for {tarball}:\n{sums}"));
    let bytes = std::fs::read(dir.join(tarball)).expect("read the tarball");
    let actual = hex(&Sha256::digest(&bytes));
    assert_eq!(actual, listed, "{tarball}'s SHA-256 is not SHA256SUMS's");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The ELF file's machine (e_machine) and whether it asks for a program interpreter (PT_INTERP):
/// a static binary, static-pie included, has none.
/// Checks the tarball against `SHA256SUMS` and unpacks it into `work`: the unpacked folder, the
/// tarball's file name, and the package's name.
pub fn unpack(work: &Path) -> (PathBuf, String, String) {
    let dist = dist_dir();
    let name = package_name();
    let tarball = format!("{name}.tar.gz");
    assert!(
        dist.join(&tarball).is_file(),
        "{} has no {tarball}: make dist-host builds it",
        dist.display()
    );
    check_checksum(&dist, &tarball);
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(dist.join(&tarball))
        .arg("-C")
        .arg(work)
        .status()
        .expect("run tar");
    assert!(status.success(), "tar could not unpack {tarball}");
    (work.join(&name), tarball, name)
}
