//! The backup archive of the local host's data directory (`POST /admin/backup`,
//! `koogallery-admin backup`/`restore`): a tar whose first entry, `manifest.json`, names every
//! other file with its size and SHA-256, then the store file (a consistent copy,
//! `EmbeddedStore::backup_to`) and the key files the data directory held.
//!
//! The manifest is an on-disk contract (`local/tests/fixtures/backup_manifest_v1.json`): a change
//! of form is a new `format`, and a reader refuses a format it does not know.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    path::{Path, PathBuf},
};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest's `format`: what this version writes and the only one it reads.
pub const FORMAT: &str = "koogallery-backup/1";
/// The archive's first entry.
pub const MANIFEST: &str = "manifest.json";
/// The store file, in the data directory and in the archive.
pub const STORE_FILE: &str = "koogallery.redb";
/// The key files a data directory may hold beside the store, each generated on first start when
/// its setting is unset: the credentials key (`keys.rs`), the Kit RSA key, the license signing
/// key (`license_api.rs`), the OIDC clients (`koogallery-local oidc-client add`) and the admin
/// token (`admin.rs`). Without them a restored store's sealed passwords cannot be read and the
/// seller's uploaded public keys no longer match.
pub const KEY_FILES: &[&str] = &[
    "credentials.key",
    koogallery::security::kit_client_secret::KEY_FILE,
    "license-signing.key",
    sso::clients::CLIENTS_FILE,
    crate::admin::TOKEN_FILE,
];

/// The archive's table of contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// When the store was copied, RFC 3339 UTC.
    pub created_at: String,
    /// The version of the host that took it.
    pub host_version: String,
    /// Every other entry of the archive, in archive order; the store file first.
    pub files: Vec<FileEntry>,
    /// The store's tables and their row counts at the copy.
    pub tables: BTreeMap<String, u64>,
}

/// One file of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

/// Why an archive could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not a backup archive: {0}")]
    NotAnArchive(String),
    #[error("unsupported backup format {found:?} (this version reads {FORMAT:?})")]
    Format { found: String },
    #[error("{name} does not match the manifest's checksum: the archive is damaged")]
    Checksum { name: String },
    #[error("{name} has {found} bytes, the manifest says {expected}: the archive is damaged")]
    Size {
        name: String,
        found: u64,
        expected: u64,
    },
    #[error("the archive lacks {0}, which its manifest names")]
    Missing(String),
    #[error("the archive holds {0}, which its manifest does not name or a backup never holds")]
    Unexpected(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ArchiveError {
    let what = what.into();
    move |source| ArchiveError::Io { what, source }
}

/// Whether `name` may be in an archive (and so be written into a data directory on restore):
/// the store file or a known key file, never a path.
pub fn allowed_name(name: &str) -> bool {
    name == STORE_FILE || KEY_FILES.contains(&name)
}

/// SHA-256 (hex) and size of the file at `path`, read in chunks.
fn digest_file(path: &Path) -> Result<(String, u64), ArchiveError> {
    let mut file =
        std::fs::File::open(path).map_err(io(format!("cannot read {}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(io(format!("cannot read {}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

fn header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

/// Writes the archive of `files` (name in the archive, path on disk; the store file first) to
/// `out`: the manifest, then each file. Returns the manifest.
pub fn write_archive(
    out: impl Write,
    files: &[(String, PathBuf)],
    tables: BTreeMap<String, u64>,
    created_at: DateTime<Utc>,
    host_version: &str,
) -> Result<Manifest, ArchiveError> {
    let mut entries = Vec::with_capacity(files.len());
    for (name, path) in files {
        let (sha256, size) = digest_file(path)?;
        entries.push(FileEntry {
            name: name.clone(),
            size,
            sha256,
        });
    }
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        created_at: created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        host_version: host_version.to_owned(),
        files: entries,
        tables,
    };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| ArchiveError::NotAnArchive(format!("cannot encode the manifest: {e}")))?;
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    tar.append_data(&mut header(json.len() as u64), MANIFEST, json.as_slice())
        .map_err(io("cannot write the archive"))?;
    for ((name, path), entry) in files.iter().zip(&manifest.files) {
        let file =
            std::fs::File::open(path).map_err(io(format!("cannot read {}", path.display())))?;
        // The size hashed: a file that grew since (a key file is never rewritten) is cut there,
        // and one that shrank fails the append.
        tar.append_data(&mut header(entry.size), name, file.take(entry.size))
            .map_err(io(format!("cannot archive {name}")))?;
    }
    tar.into_inner()
        .and_then(|mut out| out.flush())
        .map_err(io("cannot write the archive"))?;
    Ok(manifest)
}

/// Reads and verifies an archive: the manifest first and of this [`FORMAT`], then exactly the
/// files it names (known names only, no duplicates), each of its size and SHA-256. Each file's
/// bytes go to `sink` as they are read, chunk by chunk (an empty chunk first, so an empty file is
/// seen too): nothing is held in memory, and whoever keeps them must not trust them before this
/// returns `Ok`. Returns the manifest.
pub fn read_archive(
    input: impl Read,
    mut sink: impl FnMut(&str, &[u8]) -> std::io::Result<()>,
) -> Result<Manifest, ArchiveError> {
    let mut tar = tar::Archive::new(input);
    let mut entries = tar
        .entries()
        .map_err(|e| ArchiveError::NotAnArchive(e.to_string()))?;
    let bad = |e: std::io::Error| ArchiveError::NotAnArchive(e.to_string());
    let mut first = entries
        .next()
        .ok_or_else(|| ArchiveError::NotAnArchive("it is empty".into()))?
        .map_err(bad)?;
    let first_name = entry_name(&first)?;
    if first_name != MANIFEST {
        return Err(ArchiveError::NotAnArchive(format!(
            "its first entry is {first_name:?}, not {MANIFEST}"
        )));
    }
    let mut json = Vec::new();
    (&mut first)
        .take(MAX_MANIFEST_BYTES)
        .read_to_end(&mut json)
        .map_err(bad)?;
    let value: serde_json::Value = serde_json::from_slice(&json)
        .map_err(|e| ArchiveError::NotAnArchive(format!("{MANIFEST} is not JSON: {e}")))?;
    let found = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if found != FORMAT {
        return Err(ArchiveError::Format {
            found: found.to_owned(),
        });
    }
    let manifest: Manifest = serde_json::from_value(value)
        .map_err(|e| ArchiveError::NotAnArchive(format!("{MANIFEST}: {e}")))?;
    if manifest.files.first().map(|f| f.name.as_str()) != Some(STORE_FILE) {
        return Err(ArchiveError::Missing(STORE_FILE.to_owned()));
    }
    let mut seen: Vec<String> = Vec::with_capacity(manifest.files.len());
    let mut buf = vec![0u8; 64 * 1024];
    for entry in entries {
        let mut entry = entry.map_err(bad)?;
        let name = entry_name(&entry)?;
        let Some(expected) = manifest.files.iter().find(|f| f.name == name) else {
            return Err(ArchiveError::Unexpected(name));
        };
        if !allowed_name(&name) || seen.contains(&name) {
            return Err(ArchiveError::Unexpected(name));
        }
        let sink_failed = |source| ArchiveError::Io {
            what: format!("cannot keep {name}"),
            source,
        };
        sink(&name, &[]).map_err(sink_failed)?;
        let (mut hasher, mut size) = (Sha256::new(), 0u64);
        loop {
            let n = entry.read(&mut buf).map_err(bad)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
            sink(&name, &buf[..n]).map_err(sink_failed)?;
        }
        if size != expected.size {
            return Err(ArchiveError::Size {
                name,
                found: size,
                expected: expected.size,
            });
        }
        if hex::encode(hasher.finalize()) != expected.sha256 {
            return Err(ArchiveError::Checksum { name });
        }
        seen.push(name);
    }
    if let Some(missing) = manifest.files.iter().find(|f| !seen.contains(&f.name)) {
        return Err(ArchiveError::Missing(missing.name.clone()));
    }
    Ok(manifest)
}

/// [`read_archive`] for verification alone.
pub fn verify_archive(input: impl Read) -> Result<Manifest, ArchiveError> {
    read_archive(input, |_, _| Ok(()))
}

/// A manifest is a few kilobytes; a larger one is not ours.
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

fn entry_name<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, ArchiveError> {
    let path = entry
        .path()
        .map_err(|e| ArchiveError::NotAnArchive(e.to_string()))?;
    Ok(path.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files by name, with their bytes.
    type Files = Vec<(String, Vec<u8>)>;

    /// The archive's manifest and files, read whole.
    fn read_all(archive: &[u8]) -> Result<(Manifest, Files), ArchiveError> {
        let mut files: Files = Vec::new();
        let manifest = read_archive(archive, |name, chunk| {
            match files.last_mut() {
                Some((last, bytes)) if last == name => bytes.extend_from_slice(chunk),
                _ => files.push((name.to_owned(), chunk.to_vec())),
            }
            Ok(())
        })?;
        Ok((manifest, files))
    }

    /// A data directory's files with fixed contents, and the archive of them.
    fn sample() -> (tempfile::TempDir, Vec<u8>, Manifest) {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for (name, contents) in [
            (STORE_FILE, b"not really redb, but bytes".as_slice()),
            ("credentials.key", b"c2VjcmV0LWtleS1ieXRlcw==".as_slice()),
            (
                "kit-rsa-key.pem",
                b"-----BEGIN PRIVATE KEY-----\n".as_slice(),
            ),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, contents).unwrap();
            files.push((name.to_owned(), path));
        }
        let tables = BTreeMap::from([("instances".to_owned(), 2), ("jobs".to_owned(), 0)]);
        let at = DateTime::parse_from_rfc3339("2026-12-05T17:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut out = Vec::new();
        let manifest = write_archive(&mut out, &files, tables, at, "0.1.0").unwrap();
        (dir, out, manifest)
    }

    /// The manifest is a contract: `UPDATE_GOLDEN=1` rewrites the file (review the diff; a change
    /// of form is a new `format`).
    #[test]
    fn the_manifest_keeps_its_form() {
        let (_dir, archive, manifest) = sample();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        koogallery::testing::golden::check_in(
            &fixtures,
            "backup_manifest_v1.json",
            &serde_json::to_value(&manifest).unwrap(),
        );
        let expected = std::fs::read_to_string(fixtures.join("backup_manifest_v1.json")).unwrap();
        // The archive's own manifest is that one, and a stored archive of it reads back.
        assert_eq!(verify_archive(archive.as_slice()).unwrap(), manifest);
        assert_eq!(
            serde_json::from_str::<Manifest>(&expected).unwrap(),
            manifest
        );
    }

    #[test]
    fn an_archive_reads_back_whole_with_its_files_in_order() {
        let (_dir, archive, _) = sample();
        let (_, files) = read_all(&archive).unwrap();
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [STORE_FILE, "credentials.key", "kit-rsa-key.pem"]);
        assert_eq!(files[0].1, b"not really redb, but bytes");
    }

    #[test]
    fn any_flipped_byte_of_a_file_is_refused() {
        let (_dir, archive, _) = sample();
        for (name, offset) in [(STORE_FILE, 3), ("credentials.key", 0)] {
            let needle = if name == STORE_FILE {
                b"not really redb".as_slice()
            } else {
                b"c2VjcmV0".as_slice()
            };
            let at = archive
                .windows(needle.len())
                .position(|w| w == needle)
                .unwrap()
                + offset;
            let mut damaged = archive.clone();
            damaged[at] ^= 0x20;
            let e = verify_archive(damaged.as_slice()).unwrap_err();
            assert!(
                matches!(&e, ArchiveError::Checksum { name: n } if n == name),
                "{e}"
            );
        }
    }

    #[test]
    fn another_format_or_a_tar_of_something_else_is_refused() {
        let (_dir, archive, manifest) = sample();
        let text = String::from_utf8_lossy(&archive).into_owned();
        assert!(text.contains(FORMAT));
        let other = archive
            .windows(FORMAT.len())
            .position(|w| w == FORMAT.as_bytes())
            .unwrap();
        let mut damaged = archive.clone();
        damaged[other + FORMAT.len() - 1] = b'9';
        // The tar header's checksum covers the header only: the manifest reads, its format not.
        assert!(matches!(
            verify_archive(damaged.as_slice()),
            Err(ArchiveError::Format { .. })
        ));
        assert!(matches!(
            verify_archive(b"hello".as_slice()),
            Err(ArchiveError::NotAnArchive(_))
        ));
        // A tar without the manifest first.
        let mut out = Vec::new();
        {
            let mut tar = tar::Builder::new(&mut out);
            tar.append_data(&mut header(3), "notes.txt", b"abc".as_slice())
                .unwrap();
            tar.finish().unwrap();
        }
        assert!(matches!(
            verify_archive(out.as_slice()),
            Err(ArchiveError::NotAnArchive(_))
        ));
        let _ = manifest;
    }

    #[test]
    fn an_entry_the_manifest_does_not_name_is_refused() {
        let (_dir, archive, manifest) = sample();
        let json = serde_json::to_vec_pretty(&manifest).unwrap();
        let (_, files) = read_all(&archive).unwrap();
        let mut out = Vec::new();
        {
            let mut tar = tar::Builder::new(&mut out);
            tar.append_data(&mut header(json.len() as u64), MANIFEST, json.as_slice())
                .unwrap();
            for (name, bytes) in &files {
                tar.append_data(&mut header(bytes.len() as u64), name, bytes.as_slice())
                    .unwrap();
            }
            tar.append_data(&mut header(3), "notes.txt", b"abc".as_slice())
                .unwrap();
            tar.finish().unwrap();
        }
        assert!(matches!(
            verify_archive(out.as_slice()),
            Err(ArchiveError::Unexpected(n)) if n == "notes.txt"
        ));
    }
}
