//! The replay guard's journal: the nonces' durable copy, appended to files of their own beside the
//! store's (docs/architecture.md, "The replay guard").
//!
//! A group of nonces is one record appended to the current segment and made durable by one
//! `fdatasync`. A redb commit of the same group cost about three times the CPU (its B-tree pages,
//! written and synced, and the kernel's work for them): the nonce flusher was an eighth of the
//! host's CPU at full rate (BENCHMARKS.md, "The replay guard's journal").
//!
//! A segment is written with zeros to its full size when it is made, so an append overwrites
//! blocks the file already has: its `fdatasync` writes data only, never the file system's
//! metadata (an append that grew the file, or one into preallocated but unwritten space, would
//! make each sync a journal commit of the file system's too). A segment is sized for the rate
//! the last one filled at (by the requests' clock): twice its size if it filled in under
//! [`FILLED_FAST_MS`], half if it took over [`FILLED_SLOW_MS`], from [`SEGMENT_MIN`] to
//! [`SEGMENT_MAX`]. So a quiet host keeps small files, a busy one a file every few seconds, and
//! the journal holds, beyond the last `nonce_ttl` of nonces, no more than its oldest segment's.
//!
//! A segment is deleted once every nonce in it has expired. Expiry follows arrival, so the
//! oldest segments go first; nothing is rewritten. On open every segment is read, and the
//! unexpired nonces are held; appends then go to a new segment.
//!
//! # Format (version 1, pinned by `tests/fixtures/nonce_segment_v1.bin`)
//!
//! A segment `{seq:020}.nonces` is a header, [`MAGIC`] then the version (u32) and the segment's
//! sequence number (u64), followed by records, each its payload's length (u32, never 0), a CRC-32
//! of the sequence number, that length and the payload (u32), and the payload: a nonce group in
//! the encoding of `nonce_groups` rows (`nonce_group_v1.bin`). Integers are little-endian. The
//! first length of 0 (the zeros the segment was made with) ends it. So does a record that is cut
//! short or fails its checksum: a write torn by a crash, whose group was never acknowledged as
//! durable.

use std::{
    collections::VecDeque,
    io,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{Nonce, decode_group, encode_group};
use crate::Fault;

/// What every segment starts with.
const MAGIC: &[u8; 8] = b"KGNONCE\0";
const VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 8;
const RECORD_HEADER: usize = 4 + 4;

/// A quiet host's segment: the first made after an open.
pub(crate) const SEGMENT_MIN: u64 = 64 * 1024;
/// A busy host's. At the local host's full rate (about 30 000 nonces/s, some 50 bytes each) that
/// is a segment every ten seconds or so.
pub(crate) const SEGMENT_MAX: u64 = 16 * 1024 * 1024;
/// A segment filled faster than this: the next is twice its size.
pub(crate) const FILLED_FAST_MS: i64 = 10_000;
/// A segment filled slower than this: the next is half its size.
pub(crate) const FILLED_SLOW_MS: i64 = 60_000;

/// A segment file as the journal writes it (the file system's own, or a test's: a disk that
/// fills up, a write that hangs).
pub(crate) trait SegmentFile: Send + Sync {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    fn sync_data(&self) -> io::Result<()>;
}

impl SegmentFile for std::fs::File {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, data, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        std::fs::File::sync_data(self)
    }
}

/// Creates a new segment file at a path (it must not exist).
pub(crate) type SegmentOpener =
    Arc<dyn Fn(&Path) -> io::Result<Box<dyn SegmentFile>> + Send + Sync>;

/// The file system's own files.
pub(crate) fn files() -> SegmentOpener {
    Arc::new(|path| Ok(Box::new(create(path)?)))
}

/// A new segment file at `path` (it must not exist), readable by its owner only, as every file of
/// the data directory: what every opener writes through.
pub(crate) fn create(path: &Path) -> io::Result<std::fs::File> {
    crate::new_private_file().write(true).open(path)
}

/// The journal's directory for the store file at `store`: `koogallery.redb` →
/// `koogallery.redb.nonces/`. The store's whole name, so two store files never share one (redb
/// locks the store file, so one process at a time has the journal).
pub(crate) fn dir_for(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".nonces");
    PathBuf::from(name)
}

/// A segment being appended to.
struct Current {
    seq: u64,
    file: Box<dyn SegmentFile>,
    size: u64,
    end: u64,
    latest: i64,
    /// The requests' time of its first append, and of its last.
    first_ms: Option<i64>,
    last_ms: i64,
}

/// A segment no longer appended to, kept until its latest nonce expires.
struct Sealed {
    seq: u64,
    latest: i64,
}

pub(crate) struct Journal {
    dir: PathBuf,
    open: SegmentOpener,
    current: Option<Current>,
    sealed: VecDeque<Sealed>,
    next_seq: u64,
    next_size: u64,
}

impl Journal {
    /// Opens the journal in `dir` (made if missing) and reads it: returns the nonces unexpired at
    /// `now_ms`. Segments whose nonces have all expired are deleted.
    pub(crate) fn open(
        dir: &Path,
        open: SegmentOpener,
        now_ms: i64,
    ) -> Result<(Self, Vec<(Nonce, i64)>), Fault> {
        std::fs::create_dir_all(dir).map_err(io_fault("cannot make the nonce journal"))?;
        // On every open: an earlier one may have made the directory and failed before this.
        match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent)?,
            _ => sync_dir(Path::new("."))?,
        }
        let segments = list_segments(dir).map_err(io_fault("cannot list the nonce journal"))?;
        let mut live = Vec::new();
        let mut sealed = VecDeque::new();
        for &seq in &segments {
            let path = segment_path(dir, seq);
            let bytes = std::fs::read(&path).map_err(io_fault("cannot read the nonce journal"))?;
            let (groups, cut) = match read_segment(seq, &bytes) {
                Segment::Unwritten => {
                    // Its making was cut short (a crash): nothing in it was ever acknowledged.
                    remove(&path);
                    continue;
                }
                Segment::Foreign(why) => {
                    return Err(Fault::Corrupt(format!(
                        "the nonce journal's {}: {why}; move it out of {} to start without it",
                        path.display(),
                        dir.display()
                    )));
                }
                Segment::Records(groups, cut) => (groups, cut),
            };
            if let Some(why) = cut {
                // A torn last write after a crash reads so; anything else is worth a look.
                tracing::warn!(segment = %path.display(), why, "nonce journal segment read up to a damaged record");
            }
            let mut latest = i64::MIN;
            for (nonce, exp) in groups {
                latest = latest.max(exp);
                if exp > now_ms {
                    live.push((Nonce::from(nonce), exp));
                }
            }
            if latest <= now_ms {
                remove(&path);
            } else {
                sealed.push_back(Sealed { seq, latest });
            }
        }
        let next_seq = match segments.last() {
            None => 0,
            Some(&seq) => seq.checked_add(1).ok_or_else(|| {
                Fault::Corrupt(format!(
                    "{}: no segment can follow it",
                    segment_path(dir, seq).display()
                ))
            })?,
        };
        let journal = Self {
            dir: dir.to_owned(),
            open,
            current: None,
            sealed,
            next_seq,
            next_size: SEGMENT_MIN,
        };
        Ok((journal, live))
    }

    /// Appends `group` durably, then deletes the segments expired at `now_ms`. After a failure
    /// the segment is left as it is (a torn record ends it) and the next append starts another.
    pub(crate) fn append(&mut self, group: &[(Nonce, i64)], now_ms: i64) -> Result<(), Fault> {
        let payload = encode_group(group.iter().map(|(n, e)| (&**n, *e)));
        let Ok(len) = u32::try_from(payload.len()) else {
            return Err(Fault::Corrupt(format!(
                "a nonce group of {} bytes is beyond a journal record's 4 GiB",
                payload.len()
            )));
        };
        let need = (RECORD_HEADER + payload.len()) as u64;
        if let Some(full) = self.current.as_ref().filter(|c| c.end + need > c.size) {
            let took = full
                .last_ms
                .saturating_sub(full.first_ms.unwrap_or(full.last_ms));
            self.next_size = if took < FILLED_FAST_MS {
                (full.size * 2).min(SEGMENT_MAX)
            } else if took > FILLED_SLOW_MS {
                (full.size / 2).clamp(SEGMENT_MIN, SEGMENT_MAX)
            } else {
                full.size.clamp(SEGMENT_MIN, SEGMENT_MAX)
            };
            self.seal();
        }
        if self.current.is_none() {
            self.current = Some(self.make_segment(need)?);
        }
        let current = self.current.as_mut().expect("made above");
        let mut record = Vec::with_capacity(need as usize);
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&checksum(current.seq, len, &payload).to_le_bytes());
        record.extend_from_slice(&payload);
        current.latest = group.iter().map(|(_, e)| *e).fold(current.latest, i64::max);
        let written = current
            .file
            .write_at(current.end, &record)
            .and_then(|()| current.file.sync_data());
        if let Err(e) = written {
            self.seal();
            return Err(io_fault("cannot write the nonce journal")(e));
        }
        current.end += need;
        current.first_ms.get_or_insert(now_ms);
        current.last_ms = current.last_ms.max(now_ms);
        self.drop_expired(now_ms);
        Ok(())
    }

    /// Segments on disk (the current one included).
    #[cfg(test)]
    pub(crate) fn segments(&self) -> usize {
        self.sealed.len() + usize::from(self.current.is_some())
    }

    fn seal(&mut self) {
        if let Some(c) = self.current.take() {
            self.sealed.push_back(Sealed {
                seq: c.seq,
                latest: c.latest,
            });
        }
    }

    fn drop_expired(&mut self, now_ms: i64) {
        while self.sealed.front().is_some_and(|s| s.latest <= now_ms) {
            let gone = self.sealed.pop_front().expect("checked");
            remove(&segment_path(&self.dir, gone.seq));
        }
    }

    /// A new segment, written with zeros to its size (at least `need` past its header) and
    /// durable, its directory entry too.
    fn make_segment(&mut self, need: u64) -> Result<Current, Fault> {
        let seq = self.next_seq;
        // Taken whatever happens: a name whose file could not be removed is not tried again.
        self.next_seq += 1;
        let size = self.next_size.max(HEADER as u64 + need);
        let path = segment_path(&self.dir, seq);
        let mut created = false;
        let made = (|| -> io::Result<Box<dyn SegmentFile>> {
            let file = (self.open)(&path)?;
            created = true;
            let mut header = Vec::with_capacity(HEADER);
            header.extend_from_slice(MAGIC);
            header.extend_from_slice(&VERSION.to_le_bytes());
            header.extend_from_slice(&seq.to_le_bytes());
            file.write_at(0, &header)?;
            let zeros = vec![0u8; (size as usize - HEADER).min(1 << 20)];
            let mut at = HEADER as u64;
            while at < size {
                let n = zeros.len().min((size - at) as usize);
                file.write_at(at, &zeros[..n])?;
                at += n as u64;
            }
            file.sync_data()?;
            Ok(file)
        })()
        .and_then(|file| sync_dir(&self.dir).map(|()| file).map_err(fault_io));
        match made {
            Ok(file) => Ok(Current {
                seq,
                file,
                size,
                end: HEADER as u64,
                latest: i64::MIN,
                first_ms: None,
                last_ms: i64::MIN,
            }),
            Err(e) => {
                // Only a file this made: one already there (`create_new`) is not the journal's
                // to delete.
                if created {
                    remove(&path);
                }
                Err(io_fault("cannot make a nonce journal segment")(e))
            }
        }
    }
}

/// The file of segment `seq` in the journal at `dir`.
fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.nonces"))
}

/// The segments in the journal at `dir`, by sequence number (other files are not the journal's).
fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        if let Some(seq) = entry?.file_name().to_str().and_then(segment_seq) {
            segments.push(seq);
        }
    }
    segments.sort_unstable();
    Ok(segments)
}

/// The sequence number of a segment's file name.
fn segment_seq(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".nonces")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn checksum(seq: u64, len: u32, payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.to_le_bytes());
    crc.update(&len.to_le_bytes());
    crc.update(payload);
    crc.finalize()
}

/// What a segment file holds.
#[derive(Debug, PartialEq)]
enum Segment<'a> {
    /// Shorter than its header, or a header of zeros: a segment whose making a crash cut short.
    Unwritten,
    /// A header this build does not read (another version, another segment's number).
    Foreign(&'static str),
    /// The nonces of its records, and why it was read no further if not for its end.
    Records(Vec<(&'a str, i64)>, Option<&'static str>),
}

fn read_segment(seq: u64, bytes: &[u8]) -> Segment<'_> {
    let mut nonces = Vec::new();
    if bytes.len() < HEADER || bytes[..HEADER].iter().all(|b| *b == 0) {
        return Segment::Unwritten;
    }
    if &bytes[..8] != MAGIC {
        return Segment::Foreign("not a nonce journal segment");
    }
    if bytes[8..12] != VERSION.to_le_bytes() {
        return Segment::Foreign("a segment of another version of the journal");
    }
    if bytes[12..20] != seq.to_le_bytes() {
        return Segment::Foreign("its header names another segment");
    }
    let mut at = HEADER;
    while at + RECORD_HEADER <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        if len == 0 {
            return Segment::Records(nonces, None);
        }
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let end = (at + RECORD_HEADER).saturating_add(len as usize);
        let Some(payload) = bytes.get(at + RECORD_HEADER..end) else {
            return Segment::Records(nonces, Some("a record cut short"));
        };
        if checksum(seq, len, payload) != crc {
            return Segment::Records(nonces, Some("a record fails its checksum"));
        }
        match decode_group(payload) {
            Ok(group) => nonces.extend(group),
            Err(_) => return Segment::Records(nonces, Some("a record is not a nonce group")),
        }
        at = end;
    }
    Segment::Records(nonces, None)
}

/// Every nonce in the journal at `dir`, expired or not (tests).
#[cfg(test)]
pub(crate) fn on_disk(dir: &Path) -> Vec<(String, i64)> {
    let mut all = Vec::new();
    // No journal yet: nothing on disk.
    for seq in list_segments(dir).unwrap_or_default() {
        let path = segment_path(dir, seq);
        let bytes = std::fs::read(&path).unwrap();
        let Segment::Records(nonces, None) = read_segment(seq, &bytes) else {
            panic!("{} is not read whole", path.display());
        };
        all.extend(nonces.into_iter().map(|(n, e)| (n.to_owned(), e)));
    }
    all
}

fn sync_dir(dir: &Path) -> Result<(), Fault> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_fault("cannot sync the nonce journal's directory"))
}

fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        // Left for the next open, which deletes it once expired.
        Err(e) => {
            tracing::warn!(segment = %path.display(), error = %e, "cannot delete an expired nonce journal segment")
        }
    }
}

fn io_fault(what: &'static str) -> impl Fn(io::Error) -> Fault {
    move |source| Fault::Io { what, source }
}

fn fault_io(f: Fault) -> io::Error {
    match f {
        Fault::Io { source, .. } => source,
        other => io::Error::other(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(prefix: &str, n: usize, exp: i64) -> Vec<(Nonce, i64)> {
        (0..n)
            .map(|i| (Nonce::from(format!("{prefix}-{i}")), exp))
            .collect()
    }

    /// Groups appended are read back on the next open, in order; expired ones are not held.
    #[test]
    fn groups_appended_are_read_back_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("s.nonces");
        let (mut j, live) = Journal::open(&jdir, files(), 1000).unwrap();
        assert!(live.is_empty());
        j.append(&group("a", 3, 5000), 1000).unwrap();
        j.append(&group("b", 2, 2000), 1000).unwrap();
        drop(j);
        let (_, live) = Journal::open(&jdir, files(), 1500).unwrap();
        let names: Vec<&str> = live.iter().map(|(n, _)| &**n).collect();
        assert_eq!(names, ["a-0", "a-1", "a-2", "b-0", "b-1"]);
        for segment in std::fs::read_dir(&jdir).unwrap() {
            use std::os::unix::fs::PermissionsExt;
            let mode = segment.unwrap().metadata().unwrap().permissions().mode();
            assert_eq!(
                mode & 0o777,
                0o600,
                "owner only, as the data directory's files"
            );
        }
        let (_, live) = Journal::open(&jdir, files(), 2000).unwrap();
        assert_eq!(live.len(), 3, "b's expired at 2000");
    }

    /// Segments double from the smallest to the largest; one whose nonces have all expired is
    /// deleted by the next append, and at open. A group larger than a segment gets one its size.
    #[test]
    fn segments_grow_and_expired_ones_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("s.nonces");
        let (mut j, _) = Journal::open(&jdir, files(), 0).unwrap();
        // About 20 bytes a nonce: 64 KiB holds some 3 000.
        for g in 0..40 {
            j.append(&group(&format!("g{g}"), 1000, 1000 + g), 0)
                .unwrap();
        }
        let mut sizes: Vec<u64> = std::fs::read_dir(&jdir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .collect();
        sizes.sort();
        assert_eq!(sizes[0], SEGMENT_MIN, "{sizes:?}");
        assert_eq!(sizes[1], 2 * SEGMENT_MIN, "{sizes:?}");
        assert!(j.segments() >= 4, "{sizes:?}");
        assert_eq!(on_disk(&jdir).len(), 40_000);
        // Every group but the last expired: every sealed segment goes.
        j.append(&group("late", 1, 10_000), 1038).unwrap();
        assert_eq!(j.segments(), 1);
        let left = on_disk(&jdir);
        assert!(left.len() < 40_000 && left.iter().any(|(n, _)| n == "late-0"));
        assert!(
            !left.iter().any(|(n, _)| n.starts_with("g0-")),
            "only the current segment is left"
        );
        // A group bigger than a segment.
        let big: Vec<(Nonce, i64)> = (0..20_000)
            .map(|i| (Nonce::from(format!("{i:0>200}")), 10_000))
            .collect();
        j.append(&big, 1038).unwrap();
        drop(j);
        let (j, live) = Journal::open(&jdir, files(), 9_999).unwrap();
        assert_eq!(live.len(), 20_001);
        drop(j);
        let (j, live) = Journal::open(&jdir, files(), 10_000).unwrap();
        assert!(live.is_empty());
        assert_eq!(j.segments(), 0, "all expired: deleted at open");
        assert_eq!(std::fs::read_dir(&jdir).unwrap().count(), 0);
    }

    /// A segment is sized for the rate the last one filled at: twice the size when it filled in
    /// under ten seconds, half when it took over a minute (by the requests' clock).
    #[test]
    fn a_segment_is_sized_for_the_rate_the_last_filled_at() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("s.nonces");
        let (mut j, _) = Journal::open(&jdir, files(), 0).unwrap();
        // About 20 KB a group: a 64 KiB segment holds 3, the next (128 KiB) 6.
        let mut now = 0;
        let mut append = |j: &mut Journal, step: i64| {
            now += step;
            j.append(&group(&format!("t{now}"), 1000, i64::MAX), now)
                .unwrap();
        };
        for _ in 0..4 {
            append(&mut j, 1); // fast: the second segment is 128 KiB
        }
        assert_eq!(j.current.as_ref().unwrap().size, 2 * SEGMENT_MIN);
        for _ in 0..6 {
            append(&mut j, 30_000); // 150 s for 6 groups: the third is 64 KiB again
        }
        assert_eq!(j.current.as_ref().unwrap().size, SEGMENT_MIN);
        for _ in 0..3 {
            append(&mut j, 15_000); // 30 s: the same size
        }
        assert_eq!(j.current.as_ref().unwrap().size, SEGMENT_MIN);
        assert_eq!(j.segments(), 4);
    }

    /// A crash mid-write leaves a record cut short or with bytes of its own half-written: the
    /// segment is read up to it, and the groups before it are kept. A flipped bit in a record is
    /// caught by its checksum, not read as other nonces.
    #[test]
    fn a_torn_record_ends_its_segment_and_keeps_the_groups_before() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("s.nonces");
        let (mut j, _) = Journal::open(&jdir, files(), 0).unwrap();
        j.append(&group("kept", 2, 9000), 0).unwrap();
        j.append(&group("torn", 2, 9000), 0).unwrap();
        drop(j);
        let path = segment_path(&jdir, 0);
        let pristine = std::fs::read(&path).unwrap();
        let second = HEADER
            + RECORD_HEADER
            + encode_group(group("kept", 2, 9000).iter().map(|(n, e)| (&**n, *e))).len();
        for damage in 0..3 {
            let mut bytes = pristine.clone();
            match damage {
                // The second record's last bytes never reached the disk.
                0 => bytes[second + RECORD_HEADER + 10..second + RECORD_HEADER + 30].fill(0),
                // A bit flipped in its payload.
                1 => bytes[second + RECORD_HEADER + 20] ^= 1,
                // Its length beyond the file.
                _ => bytes[second..second + 4].copy_from_slice(&u32::MAX.to_le_bytes()),
            }
            std::fs::write(&path, &bytes).unwrap();
            let (j, live) = Journal::open(&jdir, files(), 0).unwrap();
            let names: Vec<&str> = live.iter().map(|(n, _)| &**n).collect();
            assert_eq!(names, ["kept-0", "kept-1"], "damage {damage}");
            assert_eq!(
                j.segments(),
                1,
                "damage {damage}: kept until its nonces expire"
            );
            drop(j);
            assert_eq!(
                std::fs::read_dir(&jdir).unwrap().count(),
                1,
                "damage {damage}"
            );
            // The next open made no segment: appends go to a new one, the damaged one stays.
            std::fs::write(&path, &pristine).unwrap();
        }
    }

    /// A segment whose making a crash cut short (shorter than its header, or a header of
    /// zeros) held nothing acknowledged and is deleted on open; one this build cannot read (a
    /// later version's, say) stops the open rather than being taken for empty and deleted.
    #[test]
    fn open_deletes_a_segment_cut_short_and_refuses_one_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("s.nonces");
        std::fs::create_dir_all(&jdir).unwrap();
        let name = |seq: u64| segment_path(&jdir, seq);
        std::fs::write(name(5), [b'K'; 10]).unwrap();
        std::fs::write(name(6), [0u8; 64]).unwrap();
        let (mut j, live) = Journal::open(&jdir, files(), 0).unwrap();
        assert!(live.is_empty());
        assert_eq!(std::fs::read_dir(&jdir).unwrap().count(), 0);
        j.append(&group("a", 1, 9000), 0).unwrap();
        assert!(name(7).exists(), "numbered after the ones deleted");
        drop(j);

        let mut later = std::fs::read(name(7)).unwrap();
        later[8..12].copy_from_slice(&2u32.to_le_bytes());
        std::fs::write(name(7), &later).unwrap();
        let refused = Journal::open(&jdir, files(), 0).err().expect("refused");
        assert!(
            format!("{refused:?}").contains("another version"),
            "{refused:?}"
        );
        assert!(name(7).exists(), "not deleted");

        std::fs::remove_file(name(7)).unwrap();
        std::fs::write(name(u64::MAX), [0u8; 64]).unwrap();
        let refused = Journal::open(&jdir, files(), 0).err().expect("refused");
        assert!(
            format!("{refused:?}").contains("no segment can follow"),
            "{refused:?}"
        );
    }

    /// Each store file has a journal of its own, named after its whole name.
    #[test]
    fn a_journal_is_named_after_the_whole_store_file_name() {
        assert_eq!(
            dir_for(Path::new("/data/koogallery.redb")),
            Path::new("/data/koogallery.redb.nonces")
        );
        assert_ne!(dir_for(Path::new("a.redb")), dir_for(Path::new("a.db")));
    }

    /// After a failed write the journal starts a new segment: what was durable stays readable,
    /// and the group is written again in full.
    #[test]
    fn after_a_failed_write_the_next_append_starts_a_new_segment() {
        use std::sync::atomic::{AtomicBool, Ordering};
        struct Flaky(std::fs::File, Arc<AtomicBool>);
        impl SegmentFile for Flaky {
            fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
                if self.1.load(Ordering::SeqCst) {
                    // Half of it lands, as a crash or a full disk can leave it.
                    SegmentFile::write_at(&self.0, offset, &data[..data.len() / 2])?;
                    return Err(io::Error::from_raw_os_error(28));
                }
                SegmentFile::write_at(&self.0, offset, data)
            }
            fn sync_data(&self) -> io::Result<()> {
                self.0.sync_data()
            }
        }
        let failing = Arc::new(AtomicBool::new(false));
        let f = failing.clone();
        let opener: SegmentOpener =
            Arc::new(move |path| Ok(Box::new(Flaky(create(path)?, f.clone()))));
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("s.nonces");
        let (mut j, _) = Journal::open(&jdir, opener, 0).unwrap();
        j.append(&group("a", 2, 9000), 0).unwrap();
        failing.store(true, Ordering::SeqCst);
        assert!(j.append(&group("b", 2, 9000), 0).is_err());
        assert!(
            j.append(&group("b", 2, 9000), 0).is_err(),
            "no segment can be made either"
        );
        failing.store(false, Ordering::SeqCst);
        j.append(&group("b", 2, 9000), 0).unwrap();
        // Not over the torn record: in a segment of its own.
        assert_eq!(j.segments(), 2);
        drop(j);
        assert_eq!(std::fs::read_dir(&jdir).unwrap().count(), 2);
        let (_, live) = Journal::open(&jdir, files(), 0).unwrap();
        let names: Vec<&str> = live.iter().map(|(n, _)| &**n).collect();
        assert_eq!(names, ["a-0", "a-1", "b-0", "b-1"]);
    }

    /// A segment's bytes are a versioned contract: a journal left by this version must be read
    /// by the next.
    #[test]
    fn a_segment_is_pinned_by_its_golden_file() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("s.nonces");
        let (mut j, _) = Journal::open(&jdir, files(), 0).unwrap();
        j.append(&[("a1b2c3d4-nonce".into(), 1_800_000_300_000)], 0)
            .unwrap();
        j.append(&[("\u{4e91}\u{5546}\u{5e97}".into(), 1_800_000_300_001)], 0)
            .unwrap();
        drop(j);
        let bytes = std::fs::read(segment_path(&jdir, 0)).unwrap();
        // The records and their end; the rest of the segment is zeros.
        let used = HEADER + 2 * RECORD_HEADER + 2 * 5 + 2 * 12 + 14 + 9 + RECORD_HEADER;
        assert!(bytes[used..].iter().all(|b| *b == 0));
        let pinned = koogallery::testing::golden::check_bytes_in(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
            "nonce_segment_v1.bin",
            &bytes[..used],
        );
        assert_eq!(
            read_segment(0, &pinned),
            Segment::Records(
                vec![
                    ("a1b2c3d4-nonce", 1_800_000_300_000),
                    ("\u{4e91}\u{5546}\u{5e97}", 1_800_000_300_001)
                ],
                None
            )
        );
        // A file renamed is refused; with its header renumbered too, its records fail their
        // checksums.
        assert_eq!(
            read_segment(1, &pinned),
            Segment::Foreign("its header names another segment")
        );
        let mut renumbered = pinned.clone();
        renumbered[12..20].copy_from_slice(&1u64.to_le_bytes());
        assert_eq!(
            read_segment(1, &renumbered),
            Segment::Records(vec![], Some("a record fails its checksum"))
        );
    }
}
