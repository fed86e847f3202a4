//! What [`Spool::open`](crate::Spool::open) cut away to get back to a consistent spool, kept as
//! data (not only logged) so the caller decides how loudly to report lost records.

use std::fmt;
use std::path::PathBuf;

/// Everything `open` truncated. Present only when something was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// One entry per segment file that was truncated, oldest segment first.
    pub segments: Vec<SegmentRepair>,
}

impl Repair {
    /// Bytes cut from all segments together.
    pub fn bytes_dropped(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes_dropped).sum()
    }
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{segment}")?;
        }
        Ok(())
    }
}

/// One truncated segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRepair {
    /// The segment file.
    pub path: PathBuf,
    /// Where the first bad frame started; the file now ends here.
    pub offset: u64,
    /// Bytes removed from the end of the file. The records among them are lost: without a
    /// frame boundary to trust, nothing after a bad frame can be told apart from garbage.
    pub bytes_dropped: u64,
    /// True when this was the newest segment: the expected remains of a write cut short by a
    /// crash, whose append never returned. False means damage inside an older, finished
    /// segment, which no crash explains (a disk or something outside the spool changed it), and
    /// records that had been appended successfully were lost.
    pub torn_tail: bool,
    /// What was wrong with the frame at `offset`.
    pub defect: Defect,
}

impl fmt::Display for SegmentRepair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.torn_tail {
            "torn tail"
        } else {
            "damaged segment"
        };
        write!(
            f,
            "{kind}: truncated {} at byte {}, dropping {} bytes ({})",
            self.path.display(),
            self.offset,
            self.bytes_dropped,
            self.defect
        )
    }
}

/// Why a frame was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// Fewer bytes remain in the file than a frame header takes.
    ShortHeader {
        /// Bytes left in the file from the frame's start.
        available: u64,
    },
    /// The header's payload length runs past the end of the file.
    LengthPastEnd {
        /// The payload length the header claims.
        payload_len: u32,
        /// Bytes left in the file after the header.
        available: u64,
    },
    /// The checksum over seq, time and payload differs from the stored one.
    ChecksumMismatch {
        /// The CRC-32 in the header.
        stored: u32,
        /// The CRC-32 of the bytes on disk.
        computed: u32,
    },
    /// The seq is not greater than the one before it, so the frame cannot belong here.
    SeqNotIncreasing {
        /// The frame's seq.
        seq: u64,
        /// The seq of the record before it (0 at the start of the spool).
        previous: u64,
    },
    /// The frame read back is not the one that was indexed (only seen by
    /// [`Spool::peek`](crate::Spool::peek), after the file changed under the spool).
    NotAsIndexed {
        /// The seq in the header on disk.
        seq: u64,
        /// The payload length in the header on disk.
        payload_len: u32,
    },
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ShortHeader { available } => {
                write!(f, "only {available} bytes left for a frame header")
            }
            Self::LengthPastEnd {
                payload_len,
                available,
            } => write!(
                f,
                "payload length {payload_len} runs past the end of the file ({available} bytes left)"
            ),
            Self::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            Self::SeqNotIncreasing { seq, previous } => {
                write!(f, "seq {seq} does not follow seq {previous}")
            }
            Self::NotAsIndexed { seq, payload_len } => write!(
                f,
                "the frame on disk (seq {seq}, {payload_len} bytes) is not the one indexed"
            ),
        }
    }
}
