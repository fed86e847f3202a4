//! What can go wrong, split so that a caller can tell back-pressure ([`Error::Full`]) from a
//! record it must never retry ([`Error::TooLarge`]) and from a broken disk ([`Error::Io`]).

use crate::repair::Defect;
use std::path::PathBuf;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spool holds as many bytes as it may; nothing was written. This is back-pressure, not a
    /// fault: acknowledging delivered records frees their segments and makes room again.
    #[error(
        "the spool is full: {needed} more bytes do not fit ({used} of {capacity} bytes in use)"
    )]
    Full {
        /// Bytes the refused write needed on disk (payloads plus frame headers).
        needed: u64,
        /// Bytes the live segment files take.
        used: u64,
        /// [`Config::max_bytes`](crate::Config::max_bytes).
        capacity: u64,
    },
    /// One record could never fit, even in an empty spool, so retrying it is pointless; nothing
    /// was written.
    #[error("a record of {bytes} bytes on disk can never fit in a spool of {capacity} bytes")]
    TooLarge {
        /// The record's size on disk: its payload plus the
        /// [`FRAME_HEADER_BYTES`](crate::FRAME_HEADER_BYTES)-byte header.
        bytes: u64,
        /// [`Config::max_bytes`](crate::Config::max_bytes), or the largest payload a frame can
        /// describe (`u32::MAX` bytes) if that is smaller.
        capacity: u64,
    },
    /// A file system operation failed.
    #[error("failed to {context}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration cannot describe a working spool.
    #[error("invalid spool configuration: {reason}")]
    InvalidConfig {
        /// Which setting and why.
        reason: &'static str,
    },
    /// The `ack` file holds something other than a seq. It is replaced atomically, so this is
    /// damage from outside; the spool refuses to guess, because guessing low re-delivers records
    /// and guessing high loses them. Deleting the file makes every record on disk deliverable
    /// again.
    #[error("the acknowledgement file {} does not hold a seq: {content:?}", path.display())]
    CorruptAck {
        /// The `ack` file.
        path: PathBuf,
        /// The start of what it holds.
        content: String,
    },
    /// An acknowledgement of seqs that were never handed out: a caller's bug, refused so that
    /// records appended later are not acknowledged before they are delivered.
    #[error("cannot acknowledge through seq {through_seq}: the last seq handed out is {last_seq}")]
    AckOutOfRange {
        /// The seq passed to [`Spool::ack`](crate::Spool::ack).
        through_seq: u64,
        /// The highest seq handed out so far (0 if none).
        last_seq: u64,
    },
    /// The oldest unacknowledged record no longer reads back as it was written (the disk changed
    /// under the spool after it was opened). [`Spool::peek`](crate::Spool::peek) reports it only
    /// when it is the first record it would return; acknowledging through `seq` skips it.
    #[error("record {seq} in {} at byte {offset} is damaged: {defect}", segment.display())]
    Corrupt {
        /// The damaged record's seq.
        seq: u64,
        /// Its segment file.
        segment: PathBuf,
        /// Where its frame starts in that file.
        offset: u64,
        /// What is wrong with it.
        defect: Defect,
    },
    /// An earlier write failed and could not be undone, so the end of the newest segment is in
    /// an unknown state; appending after it could bury good records behind garbage. Reopening
    /// the spool repairs the tail.
    #[error("the spool refuses writes until it is reopened: {reason}")]
    Poisoned {
        /// The failure that could not be undone.
        reason: String,
    },
}

/// Wraps an I/O error with what was being done, for `map_err`.
pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}
