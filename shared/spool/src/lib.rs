//! A durable on-disk write-ahead spool: the agent appends records, they stay on disk until the
//! central server acknowledges them, and they survive restarts and crashes in between (the
//! idea of Vector's disk buffer or Prometheus' remote-write WAL). Delivery is at least once: a
//! record is handed out by [`Spool::peek`] until an [`Spool::ack`] covers its seq, so after a
//! crash between delivery and acknowledgement the server sees it again and must tolerate that
//! (records carry their seq for deduplication).
//!
//! The API is synchronous and uses blocking `std` I/O with an fsync on every append; async
//! callers run it under `tokio::task::spawn_blocking` with the [`Spool`] behind a mutex.
//!
//! # On-disk format
//!
//! Everything lives in [`Config::dir`]:
//!
//! - **Segment files** `NNNNNNNNNNNNNNNNNNNN.seg`, the name being the seq of the segment's
//!   first record, zero-padded to 20 digits so that name order is seq order. Records are
//!   appended to the newest segment; a new one is started when the next frame would take the
//!   newest past [`Config::segment_bytes`] (a frame larger than that gets a segment of its
//!   own). Segments exist so that space is reclaimed by deleting whole files once every record
//!   in them is acknowledged, never by rewriting.
//! - **Frames**, one per record, back to back, all integers little-endian:
//!
//!   | bytes | field                                                          |
//!   |-------|----------------------------------------------------------------|
//!   | 4     | `u32` payload length                                           |
//!   | 4     | `u32` CRC-32 (`crc32fast`) of the 16 + payload bytes that follow |
//!   | 8     | `u64` seq, starting at 1, strictly increasing through the spool |
//!   | 8     | `i64` append time, milliseconds since the Unix epoch (caller's clock) |
//!   | n     | payload                                                        |
//!
//!   The header is [`FRAME_HEADER_BYTES`] long.
//! - **`ack`**: the seq of the last acknowledged record as decimal ASCII followed by a newline
//!   (text, so an operator can read and, in an emergency, edit it). Every record with a seq up
//!   to it is delivered. A missing file means nothing is acknowledged. It is replaced
//!   atomically: written to `ack.tmp`, fsync'ed, renamed over `ack`, and the directory
//!   fsync'ed. A leftover `ack.tmp` (a crash before the rename) is removed on open.
//!
//! Other files in the directory are left alone.
//!
//! # Recovery
//!
//! [`Spool::open`] reads `ack`, then checks every frame of every segment in order: its length
//! must fit in what is left of the file, its checksum must match and its seq must be greater
//! than the one before. At the first bad frame the rest of that segment is cut off (the file is
//! truncated there and synced):
//!
//! - in the newest segment this is the expected trace of a crash in the middle of an append,
//!   whose caller never got a seq back, so nothing it was promised is lost;
//! - in an older segment no crash explains it (the segment was finished and synced), so the
//!   records after the bad frame are lost; the spool carries on with the next segment.
//!
//! Either way [`Opened::repaired`] says what was cut, for the caller to log. Segments whose
//! records are all acknowledged (left over from a crash between writing `ack` and deleting
//! them) and segments left empty are deleted. Seqs continue after the highest seq found on disk
//! or acknowledged, whichever is higher.
//!
//! # Limits
//!
//! - Space: [`Stats::bytes`] is the size of the live segment files, and an append that would
//!   take it past [`Config::max_bytes`] is refused with [`Error::Full`]. A segment's bytes are
//!   freed only when all its records are acknowledged, so `segment_bytes` should be a small
//!   fraction of `max_bytes` (the defaults are 16 MiB of 256 MiB).
//! - Memory: payloads stay on disk; memory holds an index of about 40 bytes per
//!   unacknowledged record (seq, segment, offset, length, append time).
//! - One process, one [`Spool`] per directory. Nothing enforces it (a lock file would outlive a
//!   `kill -9`, and `std`'s file locks need a newer Rust than this workspace's minimum); two
//!   writers would corrupt each other's segments.

mod error;
mod frame;
mod repair;

pub use error::Error;
pub use frame::FRAME_HEADER_BYTES;
pub use repair::{Defect, Repair, SegmentRepair};

use error::io;
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// [`Config::max_bytes`] unless set otherwise: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// [`Config::segment_bytes`] unless set otherwise: 16 MiB, a sixteenth of the default
/// capacity, so that little space sits in partly acknowledged segments.
pub const DEFAULT_SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

const ACK_FILE: &str = "ack";
const ACK_TMP_FILE: &str = "ack.tmp";
const SEGMENT_SUFFIX: &str = ".seg";
const SEGMENT_NAME_DIGITS: usize = 20;

/// Where the spool lives and how large it may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The spool's directory, created on open if missing. It should hold nothing else, and
    /// only one [`Spool`] may use it at a time.
    pub dir: PathBuf,
    /// Most bytes the segment files may take together, frame headers included. Appends past it
    /// are refused ([`Error::Full`]) rather than dropping undelivered records.
    pub max_bytes: u64,
    /// Size at which the newest segment is closed and a new one started. Smaller segments free
    /// space sooner after acknowledgements; larger ones mean fewer files.
    pub segment_bytes: u64,
}

impl Config {
    /// A spool in `dir` with the default sizes ([`DEFAULT_MAX_BYTES`],
    /// [`DEFAULT_SEGMENT_BYTES`]).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            max_bytes: DEFAULT_MAX_BYTES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }

    fn validate(&self) -> Result<(), Error> {
        if self.max_bytes <= FRAME_HEADER_BYTES {
            return Err(Error::InvalidConfig {
                reason: "max_bytes must be larger than a frame header (24 bytes)",
            });
        }
        if self.segment_bytes == 0 {
            return Err(Error::InvalidConfig {
                reason: "segment_bytes must not be 0",
            });
        }
        Ok(())
    }
}

/// One record handed back by [`Spool::peek`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The seq [`Spool::append`] returned for it; acknowledge through it once delivered.
    pub seq: u64,
    /// The time passed to the append, in milliseconds since the Unix epoch.
    pub appended_at_ms: i64,
    /// The record as appended.
    pub payload: Vec<u8>,
}

/// A snapshot of the spool's state, cheap to take (no I/O), for metrics and health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Unacknowledged records.
    pub records: u64,
    /// Bytes of the live segment files: what counts toward [`Config::max_bytes`]. It includes
    /// acknowledged records whose segment still holds unacknowledged ones.
    pub bytes: u64,
    /// Append time of the oldest unacknowledged record: how far delivery is behind.
    pub oldest_appended_at_ms: Option<i64>,
    /// The last acknowledged seq (0 if none).
    pub acked: u64,
    /// The seq the next append will get.
    pub next_seq: u64,
    /// [`Config::max_bytes`].
    pub capacity_bytes: u64,
}

/// A freshly opened spool and what recovery had to cut away.
#[derive(Debug)]
pub struct Opened {
    /// The spool, ready to use.
    pub spool: Spool,
    /// What was truncated, if anything; worth a warning in the log.
    pub repaired: Option<Repair>,
}

/// The spool. Methods take `&mut self` because each one moves the files and the index
/// together; share it between tasks behind a mutex.
#[derive(Debug)]
pub struct Spool {
    config: Config,
    /// Live segment files, oldest first; appends go to the last one.
    segments: VecDeque<Segment>,
    /// Open for appending to the last segment, when it has been opened since it became the last.
    writer: Option<File>,
    /// Unacknowledged records, oldest first.
    index: VecDeque<Indexed>,
    /// Sum of `segments[..].bytes`.
    bytes: u64,
    acked: u64,
    next_seq: u64,
    /// Set when a failed write could not be rolled back: the newest segment's tail is unknown.
    poisoned: Option<String>,
}

/// A segment file as the spool tracks it.
#[derive(Debug)]
struct Segment {
    /// The seq in the file name.
    first_seq: u64,
    path: PathBuf,
    /// The file's length, which is also where the next frame goes.
    bytes: u64,
    /// Seq of the last record in it; `None` only for a file still empty.
    last_seq: Option<u64>,
}

/// Where an unacknowledged record is, without its payload.
#[derive(Debug, Clone, Copy)]
struct Indexed {
    seq: u64,
    /// The `first_seq` of its segment, from which the path follows.
    segment: u64,
    offset: u64,
    payload_len: u32,
    appended_at_ms: i64,
}

/// The frames of one append that go to one segment, prepared before anything is written so
/// that a refused or failed append changes nothing.
struct Placement {
    segment: u64,
    /// False for the segment that was already the newest.
    is_new: bool,
    /// The segment's length before this append.
    start: u64,
    frames: Vec<u8>,
    records: Vec<Indexed>,
}

impl Placement {
    fn end(&self) -> u64 {
        self.start + self.frames.len() as u64
    }
}

impl Spool {
    /// Opens the spool in `config.dir`, creating the directory if missing, and recovers it as
    /// the crate documentation describes: damaged tails are truncated (reported in
    /// [`Opened::repaired`]), fully acknowledged segments deleted. Fails on I/O errors, on an
    /// unreadable `ack` file and on an invalid configuration.
    pub fn open(config: Config) -> Result<Opened, Error> {
        config.validate()?;
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(io(format!("create directory {}", dir.display())))?;
        let acked = read_ack(&dir)?;
        let tmp = dir.join(ACK_TMP_FILE);
        remove_if_present(&tmp).map_err(io(format!("remove {}", tmp.display())))?;

        let mut segments = VecDeque::new();
        let mut index = VecDeque::new();
        let mut repairs = Vec::new();
        let mut highest_seq = 0;
        let names = list_segments(&dir)?;
        for (i, &first_seq) in names.iter().enumerate() {
            let path = segment_path(&dir, first_seq);
            let scan = frame::scan(&path, highest_seq, acked)?;
            if let Some(defect) = scan.defect {
                truncate(&path, scan.valid_len)?;
                repairs.push(SegmentRepair {
                    path: path.clone(),
                    offset: scan.valid_len,
                    bytes_dropped: scan.file_len - scan.valid_len,
                    torn_tail: i + 1 == names.len(),
                    defect,
                });
            }
            if let Some(last) = scan.last_seq {
                highest_seq = last;
            }
            index.extend(scan.unacked.into_iter().map(|r| Indexed {
                seq: r.seq,
                segment: first_seq,
                offset: r.offset,
                payload_len: r.payload_len,
                appended_at_ms: r.appended_at_ms,
            }));
            segments.push_back(Segment {
                first_seq,
                path,
                bytes: scan.valid_len,
                last_seq: scan.last_seq,
            });
        }

        // Empty segments can sit anywhere after repairs, not only in front, so they are
        // filtered out here rather than by the prefix rule `ack` uses.
        let mut live = VecDeque::with_capacity(segments.len());
        for segment in segments {
            if segment.last_seq.is_none_or(|last| last <= acked) {
                remove_segment(&segment.path)?;
            } else {
                live.push_back(segment);
            }
        }

        let spool = Spool {
            bytes: live.iter().map(|s| s.bytes).sum(),
            segments: live,
            writer: None,
            index,
            acked,
            next_seq: highest_seq.max(acked).saturating_add(1),
            poisoned: None,
            config,
        };
        let repaired = (!repairs.is_empty()).then_some(Repair { segments: repairs });
        Ok(Opened { spool, repaired })
    }

    /// Appends one record and returns its seq once the frame is on disk and synced
    /// (`sync_data`, plus the directory when a segment was created), so a returned seq survives
    /// a crash. Refused without writing anything when the spool has no room
    /// ([`Error::Full`]) or the record could never fit ([`Error::TooLarge`]). After an
    /// [`Error::Io`] the partial frame has been removed again; a record whose append failed may
    /// still have reached the disk and be delivered after a restart (at least once).
    pub fn append(&mut self, payload: &[u8], now_ms: i64) -> Result<u64, Error> {
        self.write(&[payload], now_ms)
    }

    /// Appends several records with one sync per touched segment, returning their seqs in
    /// order. All or nothing: if one is too large or they do not all fit, nothing is written.
    /// An empty batch writes nothing and returns no seqs.
    pub fn append_batch(&mut self, payloads: &[Vec<u8>], now_ms: i64) -> Result<Vec<u64>, Error> {
        let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let first = self.write(&slices, now_ms)?;
        Ok((first..first + slices.len() as u64).collect())
    }

    /// The oldest unacknowledged records, in seq order, read from disk: at most `max_records`
    /// of them and as many as fit in `max_bytes` of payload, but always at least one if any is
    /// waiting (and `max_records` is not 0), however large, so one big record cannot stall
    /// delivery. Peeking does not consume: the same records come back until acknowledged.
    ///
    /// Each record's checksum is checked again on the way out. A record damaged since the
    /// spool was opened ends the batch before it; if it is the first, [`Error::Corrupt`] names
    /// it, and acknowledging its seq skips it.
    pub fn peek(&mut self, max_records: usize, max_bytes: usize) -> Result<Vec<Entry>, Error> {
        let mut entries = Vec::new();
        let mut total: usize = 0;
        let mut open: Option<(u64, File)> = None;
        for record in self.index.iter().take(max_records) {
            let len = usize::try_from(record.payload_len).unwrap_or(usize::MAX);
            if !entries.is_empty() && total.saturating_add(len) > max_bytes {
                break;
            }
            let path = segment_path(&self.config.dir, record.segment);
            let file = match open.take() {
                Some((segment, file)) if segment == record.segment => file,
                _ => File::open(&path).map_err(io(format!("open segment {}", path.display())))?,
            };
            let (_, file) = open.insert((record.segment, file));
            match frame::read_at(file, &path, record.offset, record.seq, record.payload_len)? {
                Ok(read) => {
                    total = total.saturating_add(len);
                    entries.push(Entry {
                        seq: record.seq,
                        appended_at_ms: read.appended_at_ms,
                        payload: read.payload,
                    });
                }
                Err(_) if !entries.is_empty() => break,
                Err(defect) => {
                    return Err(Error::Corrupt {
                        seq: record.seq,
                        segment: path,
                        offset: record.offset,
                        defect,
                    });
                }
            }
        }
        Ok(entries)
    }

    /// Records that every record up to and including `through_seq` is delivered, durably
    /// (`ack.tmp`, fsync, rename to `ack`, fsync of the directory) before returning, then
    /// deletes the segments all of whose records are now acknowledged, freeing their bytes.
    /// Acknowledging a seq at or below the current acknowledgement changes nothing (late or
    /// repeated acks are harmless); one beyond the last seq handed out is refused
    /// ([`Error::AckOutOfRange`]). If deleting a segment fails the acknowledgement still holds,
    /// and the next `ack` call retries the deletion.
    pub fn ack(&mut self, through_seq: u64) -> Result<(), Error> {
        if through_seq > self.acked {
            let last_seq = self.next_seq - 1;
            if through_seq > last_seq {
                return Err(Error::AckOutOfRange {
                    through_seq,
                    last_seq,
                });
            }
            write_ack(&self.config.dir, through_seq)?;
            self.acked = through_seq;
            while self
                .index
                .front()
                .is_some_and(|record| record.seq <= through_seq)
            {
                self.index.pop_front();
            }
        }
        self.delete_acked_segments()
    }

    /// The spool's current numbers.
    pub fn stats(&self) -> Stats {
        Stats {
            records: self.index.len() as u64,
            bytes: self.bytes,
            oldest_appended_at_ms: self.index.front().map(|record| record.appended_at_ms),
            acked: self.acked,
            next_seq: self.next_seq,
            capacity_bytes: self.config.max_bytes,
        }
    }

    /// Deletes segments from the front while all their records are acknowledged. Seqs increase
    /// through the segments, so those form a prefix. The newest segment goes too when it is
    /// fully acknowledged: otherwise a spool that fits in one segment could never free space;
    /// the next append simply starts a new one.
    fn delete_acked_segments(&mut self) -> Result<(), Error> {
        while let Some(front) = self.segments.front() {
            if front.last_seq.is_some_and(|last| last > self.acked) {
                break;
            }
            if self.segments.len() == 1 {
                self.writer = None;
            }
            remove_segment(&front.path)?;
            self.bytes -= front.bytes;
            self.segments.pop_front();
        }
        Ok(())
    }

    /// Appends `payloads` as consecutive records and returns the first one's seq. Everything is
    /// checked and laid out in memory first; only then are files touched, and a failure while
    /// writing is rolled back, so the in-memory state only ever changes after a full success.
    fn write(&mut self, payloads: &[&[u8]], now_ms: i64) -> Result<u64, Error> {
        if let Some(reason) = &self.poisoned {
            return Err(Error::Poisoned {
                reason: reason.clone(),
            });
        }
        let first_seq = self.next_seq;
        if payloads.is_empty() {
            return Ok(first_seq);
        }

        let capacity = self.config.max_bytes;
        let mut needed: u64 = 0;
        for payload in payloads {
            let bytes = frame::frame_bytes(payload.len());
            if bytes > capacity {
                return Err(Error::TooLarge { bytes, capacity });
            }
            if u32::try_from(payload.len()).is_err() {
                return Err(Error::TooLarge {
                    bytes,
                    capacity: frame::frame_bytes(u32::MAX as usize),
                });
            }
            needed = needed.saturating_add(bytes);
        }
        if self.bytes.saturating_add(needed) > capacity {
            return Err(Error::Full {
                needed,
                used: self.bytes,
                capacity,
            });
        }

        let placements = self.place(payloads, first_seq, now_ms);
        let mut created = Vec::new();
        if let Err(error) = self.write_placements(&placements, &mut created) {
            self.roll_back(&placements, &created, &error);
            return Err(error);
        }

        for placement in placements {
            let last_seq = placement.records.last().map(|record| record.seq);
            if placement.is_new {
                self.segments.push_back(Segment {
                    first_seq: placement.segment,
                    path: segment_path(&self.config.dir, placement.segment),
                    bytes: placement.end(),
                    last_seq,
                });
            } else if let Some(segment) = self.segments.back_mut() {
                segment.bytes = placement.end();
                segment.last_seq = last_seq.or(segment.last_seq);
            }
            self.index.extend(placement.records);
        }
        self.bytes += needed;
        self.next_seq = first_seq + payloads.len() as u64;
        Ok(first_seq)
    }

    /// Decides which segment each frame goes to: the newest while it stays within
    /// `segment_bytes` (or is empty, so an oversized frame still gets written), else a new
    /// segment named after the frame's seq.
    fn place(&self, payloads: &[&[u8]], first_seq: u64, now_ms: i64) -> Vec<Placement> {
        let mut placements = Vec::new();
        let mut current = self.segments.back().map(|segment| Placement {
            segment: segment.first_seq,
            is_new: false,
            start: segment.bytes,
            frames: Vec::new(),
            records: Vec::new(),
        });
        for (seq, payload) in (first_seq..).zip(payloads) {
            let bytes = frame::frame_bytes(payload.len());
            let mut placement = match current.take() {
                Some(p) if p.end() == 0 || p.end() + bytes <= self.config.segment_bytes => p,
                finished => {
                    placements.extend(finished.filter(|p| !p.records.is_empty()));
                    Placement {
                        segment: seq,
                        is_new: true,
                        start: 0,
                        frames: Vec::new(),
                        records: Vec::new(),
                    }
                }
            };
            placement.records.push(Indexed {
                seq,
                segment: placement.segment,
                offset: placement.end(),
                payload_len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
                appended_at_ms: now_ms,
            });
            frame::encode(&mut placement.frames, seq, now_ms, payload);
            current = Some(placement);
        }
        placements.extend(current.filter(|p| !p.records.is_empty()));
        placements
    }

    /// Writes and syncs each placement; records every file it creates in `created` as soon as
    /// it exists, so a rollback can remove it.
    fn write_placements(
        &mut self,
        placements: &[Placement],
        created: &mut Vec<PathBuf>,
    ) -> Result<(), Error> {
        for placement in placements {
            let path = segment_path(&self.config.dir, placement.segment);
            let file = if placement.is_new {
                // `create_new`: a segment of that name already existing would mean the index
                // and the directory disagree; better to fail than to append to a stranger.
                let file = OpenOptions::new()
                    .append(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(io(format!("create segment {}", path.display())))?;
                created.push(path.clone());
                file
            } else {
                match self.writer.take() {
                    Some(file) => file,
                    None => OpenOptions::new()
                        .append(true)
                        .open(&path)
                        .map_err(io(format!("open segment {}", path.display())))?,
                }
            };
            let file = self.writer.insert(file);
            file.write_all(&placement.frames)
                .map_err(io(format!("write to segment {}", path.display())))?;
            file.sync_data()
                .map_err(io(format!("sync segment {}", path.display())))?;
        }
        if !created.is_empty() {
            // The new file's directory entry must be durable too, or the synced frames in it
            // could vanish with it after a crash.
            sync_dir(&self.config.dir)?;
        }
        Ok(())
    }

    /// Undoes a failed append on disk: removes the segments it created and cuts the newest
    /// existing segment back to its old length. If that fails too, the spool refuses further
    /// writes until reopened, since appending after an unknown tail could hide good frames
    /// behind a bad one.
    fn roll_back(&mut self, placements: &[Placement], created: &[PathBuf], error: &Error) {
        self.writer = None;
        let mut result = Ok(());
        for path in created {
            result = result.and(remove_segment(path));
        }
        if let Some(existing) = placements.iter().find(|p| !p.is_new) {
            let path = segment_path(&self.config.dir, existing.segment);
            result = result.and(truncate(&path, existing.start));
        }
        if let Err(rollback) = result {
            self.poisoned = Some(format!(
                "an append failed ({error}) and undoing it failed too ({rollback})"
            ));
        }
    }
}

/// `dir/NNNNNNNNNNNNNNNNNNNN.seg`.
fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!(
        "{first_seq:0width$}{SEGMENT_SUFFIX}",
        width = SEGMENT_NAME_DIGITS
    ))
}

/// The first seqs of the segment files in `dir`, in order. Names not of the exact form are not
/// the spool's and are ignored.
fn list_segments(dir: &Path) -> Result<Vec<u64>, Error> {
    let context = || io(format!("list directory {}", dir.display()));
    let mut seqs = Vec::new();
    for entry in fs::read_dir(dir).map_err(context())? {
        let name = entry.map_err(context())?.file_name();
        let Some(digits) = name.to_str().and_then(|n| n.strip_suffix(SEGMENT_SUFFIX)) else {
            continue;
        };
        if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(seq) = digits.parse::<u64>() {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// The acknowledged seq; 0 when the file does not exist yet.
fn read_ack(dir: &Path) -> Result<u64, Error> {
    let path = dir.join(ACK_FILE);
    let content = match fs::read(&path) {
        Ok(content) => content,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(io(format!("read {}", path.display()))(error)),
    };
    let text = String::from_utf8_lossy(&content);
    text.trim().parse().map_err(|_| Error::CorruptAck {
        content: text.chars().take(64).collect(),
        path,
    })
}

/// Replaces `ack` atomically and durably: a crash leaves either the old or the new value.
fn write_ack(dir: &Path, seq: u64) -> Result<(), Error> {
    let tmp = dir.join(ACK_TMP_FILE);
    let path = dir.join(ACK_FILE);
    let mut file = File::create(&tmp).map_err(io(format!("create {}", tmp.display())))?;
    file.write_all(format!("{seq}\n").as_bytes())
        .map_err(io(format!("write {}", tmp.display())))?;
    file.sync_all()
        .map_err(io(format!("sync {}", tmp.display())))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(io(format!(
        "rename {} to {}",
        tmp.display(),
        path.display()
    )))?;
    sync_dir(dir)
}

/// Cuts a file to `len` bytes and syncs it, so a repair or rollback is itself durable.
fn truncate(path: &Path, len: u64) -> Result<(), Error> {
    let context = || io(format!("truncate {} to {len} bytes", path.display()));
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(context())?;
    file.set_len(len).map_err(context())?;
    file.sync_all().map_err(context())
}

/// Deletes a segment file; one already gone counts as deleted. The directory is not synced: a
/// deletion lost in a crash only leaves an acknowledged segment, which the next open deletes.
fn remove_segment(path: &Path) -> Result<(), Error> {
    remove_if_present(path).map_err(io(format!("delete segment {}", path.display())))
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Makes creations, renames and deletions in `dir` durable. Only Unix can open a directory
/// to sync it; elsewhere the file system's own ordering has to do.
fn sync_dir(dir: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("sync directory {}", dir.display())))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
