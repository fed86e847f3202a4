//! The frame: how one record is laid out in a segment file, and how a segment is read back and
//! checked. See the crate documentation for the layout.

use crate::error::{Error, io};
use crate::repair::Defect;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Bytes in a frame before its payload: length, CRC-32, seq and append time. Every record
/// costs this much on disk on top of its payload, and it counts toward
/// [`Config::max_bytes`](crate::Config::max_bytes).
pub const FRAME_HEADER_BYTES: u64 = 24;

/// The header as an array, for reading it in one call.
const HEADER_LEN: usize = 24;

/// A frame's size on disk for a payload of `payload_len` bytes.
pub(crate) fn frame_bytes(payload_len: usize) -> u64 {
    FRAME_HEADER_BYTES.saturating_add(u64::try_from(payload_len).unwrap_or(u64::MAX))
}

/// The checksum covers seq and time as well as the payload, so a frame copied or shifted to
/// another place is caught, not only flipped payload bits. The length is left out: a wrong
/// length makes the checksum cover the wrong bytes, which it then fails on.
fn checksum(seq: u64, appended_at_ms: i64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(&appended_at_ms.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Appends the frame for one record to `buf`. The caller has checked that the payload's length
/// fits in a `u32`.
pub(crate) fn encode(buf: &mut Vec<u8>, seq: u64, appended_at_ms: i64, payload: &[u8]) {
    let payload_len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&payload_len.to_le_bytes());
    buf.extend_from_slice(&checksum(seq, appended_at_ms, payload).to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&appended_at_ms.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// A decoded frame header.
struct Header {
    payload_len: u32,
    crc: u32,
    seq: u64,
    appended_at_ms: i64,
}

impl Header {
    fn parse(bytes: &[u8; HEADER_LEN]) -> Self {
        let [
            l0,
            l1,
            l2,
            l3,
            c0,
            c1,
            c2,
            c3,
            s0,
            s1,
            s2,
            s3,
            s4,
            s5,
            s6,
            s7,
            t0,
            t1,
            t2,
            t3,
            t4,
            t5,
            t6,
            t7,
        ] = *bytes;
        Self {
            payload_len: u32::from_le_bytes([l0, l1, l2, l3]),
            crc: u32::from_le_bytes([c0, c1, c2, c3]),
            seq: u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]),
            appended_at_ms: i64::from_le_bytes([t0, t1, t2, t3, t4, t5, t6, t7]),
        }
    }
}

/// A valid record found by [`scan`].
pub(crate) struct Scanned {
    pub seq: u64,
    pub offset: u64,
    pub payload_len: u32,
    pub appended_at_ms: i64,
}

/// What [`scan`] found in one segment file.
pub(crate) struct Scan {
    /// The valid records with a seq above the acknowledged one, in file order. Acknowledged
    /// records are only counted in `last_seq`, so that opening a spool full of delivered
    /// records does not hold an index of them.
    pub unacked: Vec<Scanned>,
    /// The seq of the last valid record, acknowledged or not.
    pub last_seq: Option<u64>,
    /// Where the valid records end: the file's length, or where the first bad frame starts.
    pub valid_len: u64,
    /// The file's length as found.
    pub file_len: u64,
    /// Why the frame at `valid_len` was rejected, if the file does not end there.
    pub defect: Option<Defect>,
}

/// Reads a segment front to back, checking every frame, until its end or its first bad frame.
/// Payloads are streamed through the checksum rather than held, so a large frame costs no
/// memory. Lengths are bounded by what is left in the file (not by the configured capacity),
/// so lowering `max_bytes` between runs never turns good records into "damage".
pub(crate) fn scan(path: &Path, previous_seq: u64, acked: u64) -> Result<Scan, Error> {
    let file = File::open(path).map_err(io(format!("open segment {}", path.display())))?;
    let file_len = file
        .metadata()
        .map_err(io(format!("read the size of segment {}", path.display())))?
        .len();
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let read_error = || io(format!("read segment {}", path.display()));

    let mut scan = Scan {
        unacked: Vec::new(),
        last_seq: None,
        valid_len: 0,
        file_len,
        defect: None,
    };
    let mut previous = previous_seq;
    let mut chunk = vec![0u8; 64 * 1024];
    while scan.valid_len < file_len {
        let offset = scan.valid_len;
        let available = file_len - offset;
        if available < FRAME_HEADER_BYTES {
            scan.defect = Some(Defect::ShortHeader { available });
            break;
        }
        let mut header_bytes = [0u8; HEADER_LEN];
        reader.read_exact(&mut header_bytes).map_err(read_error())?;
        let header = Header::parse(&header_bytes);
        let after_header = available - FRAME_HEADER_BYTES;
        if u64::from(header.payload_len) > after_header {
            scan.defect = Some(Defect::LengthPastEnd {
                payload_len: header.payload_len,
                available: after_header,
            });
            break;
        }

        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header_bytes[8..]);
        let mut left = u64::from(header.payload_len);
        while left > 0 {
            let take = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
            let part = &mut chunk[..take];
            reader.read_exact(part).map_err(read_error())?;
            hasher.update(part);
            left -= take as u64;
        }
        let computed = hasher.finalize();
        if computed != header.crc {
            scan.defect = Some(Defect::ChecksumMismatch {
                stored: header.crc,
                computed,
            });
            break;
        }
        if header.seq <= previous {
            scan.defect = Some(Defect::SeqNotIncreasing {
                seq: header.seq,
                previous,
            });
            break;
        }

        previous = header.seq;
        scan.last_seq = Some(header.seq);
        if header.seq > acked {
            scan.unacked.push(Scanned {
                seq: header.seq,
                offset,
                payload_len: header.payload_len,
                appended_at_ms: header.appended_at_ms,
            });
        }
        scan.valid_len = offset + FRAME_HEADER_BYTES + u64::from(header.payload_len);
    }
    Ok(scan)
}

/// One record read back for delivery.
pub(crate) struct ReadBack {
    pub appended_at_ms: i64,
    pub payload: Vec<u8>,
}

/// Reads the frame at `offset` and checks it is the indexed record (`seq`, `payload_len`) and
/// intact. `Ok(Err(defect))` is a damaged frame; `Err` is a failure to read at all.
pub(crate) fn read_at(
    file: &mut File,
    path: &Path,
    offset: u64,
    seq: u64,
    payload_len: u32,
) -> Result<Result<ReadBack, Defect>, Error> {
    let read_error = || io(format!("read segment {} at byte {offset}", path.display()));
    file.seek(SeekFrom::Start(offset)).map_err(read_error())?;
    let mut header_bytes = [0u8; HEADER_LEN];
    file.read_exact(&mut header_bytes).map_err(read_error())?;
    let header = Header::parse(&header_bytes);
    if header.seq != seq || header.payload_len != payload_len {
        return Ok(Err(Defect::NotAsIndexed {
            seq: header.seq,
            payload_len: header.payload_len,
        }));
    }
    let len = usize::try_from(payload_len).unwrap_or(usize::MAX);
    let mut payload = vec![0u8; len];
    file.read_exact(&mut payload).map_err(read_error())?;
    let computed = checksum(header.seq, header.appended_at_ms, &payload);
    if computed != header.crc {
        return Ok(Err(Defect::ChecksumMismatch {
            stored: header.crc,
            computed,
        }));
    }
    Ok(Ok(ReadBack {
        appended_at_ms: header.appended_at_ms,
        payload,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_frame_has_the_documented_layout() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, -3, b"hi");
        assert_eq!(buf.len() as u64, frame_bytes(2));
        assert_eq!(&buf[0..4], &2u32.to_le_bytes());
        assert_eq!(&buf[8..16], &7u64.to_le_bytes());
        assert_eq!(&buf[16..24], &(-3i64).to_le_bytes());
        assert_eq!(&buf[24..], b"hi");
        let crc = crc32fast::hash(&buf[8..]);
        assert_eq!(&buf[4..8], &crc.to_le_bytes());
    }
}
