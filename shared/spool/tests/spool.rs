//! The spool through its public API and its files: round trips, restarts, crash remains and
//! damage, capacity.

use deploygraph_spool::{Config, Defect, Entry, Error, FRAME_HEADER_BYTES, Opened, Spool, Stats};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Payloads of this size make frames of `FRAME` bytes, so sizes below are easy to reason about.
const PAYLOAD: usize = 50;
const FRAME: u64 = FRAME_HEADER_BYTES + PAYLOAD as u64;

fn payload(n: u64) -> Vec<u8> {
    let mut p = format!("record-{n:04}-").into_bytes();
    p.resize(PAYLOAD, b'.');
    p
}

fn config(dir: &Path, max_bytes: u64, segment_bytes: u64) -> Config {
    Config {
        dir: dir.to_path_buf(),
        max_bytes,
        segment_bytes,
    }
}

fn open(config: &Config) -> Opened {
    Spool::open(config.clone()).expect("open the spool")
}

fn open_clean(config: &Config) -> Spool {
    let opened = open(config);
    assert_eq!(opened.repaired, None, "a clean spool needs no repair");
    opened.spool
}

/// Segment files in the directory, oldest first, with their sizes.
fn segments(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<(PathBuf, u64)> = fs::read_dir(dir)
        .expect("list the spool directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .map(|path| {
            let len = fs::metadata(&path).expect("segment metadata").len();
            (path, len)
        })
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

fn seqs(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

fn peek_all(spool: &mut Spool) -> Vec<Entry> {
    spool.peek(usize::MAX, usize::MAX).expect("peek")
}

fn append_n(spool: &mut Spool, seqs: std::ops::RangeInclusive<u64>, now_ms: i64) {
    for n in seqs {
        let seq = spool.append(&payload(n), now_ms).expect("append");
        assert_eq!(seq, n);
    }
}

#[test]
fn append_peek_ack_round_trip_keeps_order_and_frees_segments() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Three 74-byte frames fit in 256 bytes, so 20 records make 7 segments.
    let config = config(dir.path(), 1 << 20, 256);
    let mut spool = open_clean(&config);
    assert_eq!(
        spool.stats(),
        Stats {
            records: 0,
            bytes: 0,
            oldest_appended_at_ms: None,
            acked: 0,
            next_seq: 1,
            capacity_bytes: 1 << 20,
        }
    );
    assert!(peek_all(&mut spool).is_empty());

    for n in 1..=20u64 {
        let seq = spool.append(&payload(n), 1_000 + n as i64).expect("append");
        assert_eq!(seq, n);
    }
    let files = segments(dir.path());
    assert_eq!(files.len(), 7);
    assert_eq!(file_name(&files[0].0), "00000000000000000001.seg");
    assert_eq!(file_name(&files[1].0), "00000000000000000004.seg");
    assert_eq!(files[0].1, 3 * FRAME);
    assert_eq!(files[6].1, 2 * FRAME);
    assert_eq!(
        spool.stats(),
        Stats {
            records: 20,
            bytes: 20 * FRAME,
            oldest_appended_at_ms: Some(1_001),
            acked: 0,
            next_seq: 21,
            capacity_bytes: 1 << 20,
        }
    );

    let first = spool.peek(5, usize::MAX).expect("peek");
    assert_eq!(seqs(&first), vec![1, 2, 3, 4, 5]);
    for entry in &first {
        assert_eq!(entry.payload, payload(entry.seq));
        assert_eq!(entry.appended_at_ms, 1_000 + entry.seq as i64);
    }
    // Peeking does not consume.
    assert_eq!(spool.peek(5, usize::MAX).expect("peek again"), first);
    // The byte budget counts payloads: two fit in 120, a third would not.
    assert_eq!(seqs(&spool.peek(100, 120).expect("peek")), vec![1, 2]);
    // At least one record, even past the byte budget.
    assert_eq!(seqs(&spool.peek(100, 1).expect("peek")), vec![1]);
    assert!(spool.peek(0, usize::MAX).expect("peek").is_empty());

    // Through 7: segments 1-3 and 4-6 go, the one holding 7-9 stays (8 and 9 are not acked).
    spool.ack(7).expect("ack");
    let files = segments(dir.path());
    assert_eq!(files.len(), 5);
    assert_eq!(file_name(&files[0].0), "00000000000000000007.seg");
    assert_eq!(
        fs::read_to_string(dir.path().join("ack")).expect("read ack"),
        "7\n"
    );
    let stats = spool.stats();
    assert_eq!(stats.records, 13);
    assert_eq!(stats.bytes, 14 * FRAME);
    assert_eq!(stats.oldest_appended_at_ms, Some(1_008));
    assert_eq!(stats.acked, 7);
    assert_eq!(seqs(&spool.peek(2, usize::MAX).expect("peek")), vec![8, 9]);

    // A late or repeated ack changes nothing; one past the last seq is refused.
    spool.ack(3).expect("late ack");
    assert_eq!(spool.stats(), stats);
    let refused = spool.ack(21).expect_err("ack beyond the last seq");
    assert!(matches!(
        refused,
        Error::AckOutOfRange {
            through_seq: 21,
            last_seq: 20
        }
    ));

    // Everything acknowledged: every segment goes, the one being appended to included.
    spool.ack(20).expect("ack all");
    assert!(segments(dir.path()).is_empty());
    let stats = spool.stats();
    assert_eq!((stats.records, stats.bytes), (0, 0));
    assert_eq!(stats.oldest_appended_at_ms, None);
    assert!(peek_all(&mut spool).is_empty());

    assert_eq!(spool.append(&payload(21), 2_000).expect("append"), 21);
    let files = segments(dir.path());
    assert_eq!(files.len(), 1);
    assert_eq!(file_name(&files[0].0), "00000000000000000021.seg");
    assert_eq!(seqs(&peek_all(&mut spool)), vec![21]);
}

#[test]
fn reopen_returns_unacked_records_and_continues_seqs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(dir.path(), 1 << 20, 256);
    {
        let mut spool = open_clean(&config);
        for n in 1..=8u64 {
            spool
                .append(&payload(n), 5_000 + 10 * n as i64)
                .expect("append");
        }
        spool.ack(4).expect("ack");
    }

    let mut spool = open_clean(&config);
    let entries = peek_all(&mut spool);
    assert_eq!(seqs(&entries), vec![5, 6, 7, 8]);
    for entry in &entries {
        assert_eq!(entry.payload, payload(entry.seq));
        assert_eq!(entry.appended_at_ms, 5_000 + 10 * entry.seq as i64);
    }
    let stats = spool.stats();
    assert_eq!(stats.records, 4);
    assert_eq!(stats.acked, 4);
    assert_eq!(stats.next_seq, 9);
    assert_eq!(stats.oldest_appended_at_ms, Some(5_050));
    assert_eq!(stats.bytes, segments(dir.path()).iter().map(|s| s.1).sum());
    assert_eq!(spool.append(&payload(9), 6_000).expect("append"), 9);

    // Acknowledge everything: no segment is left, yet seqs continue from the ack file.
    spool.ack(9).expect("ack all");
    drop(spool);
    assert!(segments(dir.path()).is_empty());
    let mut spool = open_clean(&config);
    assert!(peek_all(&mut spool).is_empty());
    assert_eq!(spool.stats().next_seq, 10);
    assert_eq!(spool.append(&payload(10), 7_000).expect("append"), 10);
}

#[test]
fn open_deletes_segments_acknowledged_before_a_crash() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(dir.path(), 1 << 20, 256);
    {
        let mut spool = open_clean(&config);
        append_n(&mut spool, 1..=7, 0);
    }
    // A crash after the ack file was replaced but before the segments were deleted.
    fs::write(dir.path().join("ack"), "6\n").expect("write ack");
    fs::write(dir.path().join("ack.tmp"), "7\n").expect("write ack.tmp");
    let mut spool = open_clean(&config);
    assert_eq!(seqs(&peek_all(&mut spool)), vec![7]);
    let files = segments(dir.path());
    assert_eq!(files.len(), 1);
    assert_eq!(file_name(&files[0].0), "00000000000000000007.seg");
    assert!(!dir.path().join("ack.tmp").exists());
    assert_eq!(spool.stats().bytes, FRAME);
}

#[test]
fn torn_tail_is_truncated_and_the_spool_keeps_working() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(dir.path(), 1 << 20, 1 << 16);
    {
        let mut spool = open_clean(&config);
        append_n(&mut spool, 1..=3, 100);
    }
    let (path, len) = segments(dir.path()).remove(0);
    assert_eq!(len, 3 * FRAME);
    // kill -9 in the middle of writing the third frame.
    OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open segment")
        .set_len(len - 5)
        .expect("truncate");

    let Opened {
        mut spool,
        repaired,
    } = open(&config);
    let repair = repaired.expect("the torn tail is reported");
    assert_eq!(repair.segments.len(), 1);
    let segment = &repair.segments[0];
    assert_eq!(segment.path, path);
    assert!(segment.torn_tail);
    assert_eq!(segment.offset, 2 * FRAME);
    assert_eq!(segment.bytes_dropped, FRAME - 5);
    assert!(matches!(
        segment.defect,
        Defect::LengthPastEnd {
            payload_len: 50,
            ..
        }
    ));
    assert!(repair.to_string().contains("torn tail"));
    assert_eq!(fs::metadata(&path).expect("metadata").len(), 2 * FRAME);
    assert_eq!(seqs(&peek_all(&mut spool)), vec![1, 2]);
    assert_eq!(spool.stats().bytes, 2 * FRAME);

    // The torn record's append never returned, so its seq is handed out again.
    assert_eq!(spool.append(b"after the crash", 200).expect("append"), 3);
    drop(spool);
    let mut spool = open_clean(&config);
    let entries = peek_all(&mut spool);
    assert_eq!(seqs(&entries), vec![1, 2, 3]);
    assert_eq!(entries[2].payload, b"after the crash");
    assert_eq!(entries[2].appended_at_ms, 200);
}

#[test]
fn garbage_after_the_last_frame_is_truncated() {
    for garbage in [vec![0xAB; 10], vec![0xAB; 100], vec![0; 30]] {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = config(dir.path(), 1 << 20, 1 << 16);
        {
            let mut spool = open_clean(&config);
            append_n(&mut spool, 1..=3, 100);
        }
        let (path, _) = segments(dir.path()).remove(0);
        OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open segment")
            .write_all(&garbage)
            .expect("append garbage");

        let Opened {
            mut spool,
            repaired,
        } = open(&config);
        let repair = repaired.expect("the garbage is reported");
        assert_eq!(repair.segments.len(), 1);
        assert!(repair.segments[0].torn_tail);
        assert_eq!(repair.segments[0].offset, 3 * FRAME);
        assert_eq!(repair.bytes_dropped(), garbage.len() as u64);
        assert_eq!(seqs(&peek_all(&mut spool)), vec![1, 2, 3]);

        assert_eq!(spool.append(&payload(4), 300).expect("append"), 4);
        drop(spool);
        let mut spool = open_clean(&config);
        assert_eq!(seqs(&peek_all(&mut spool)), vec![1, 2, 3, 4]);
    }
}

#[test]
fn damage_inside_an_older_segment_loses_only_the_rest_of_that_segment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(dir.path(), 1 << 20, 256);
    {
        let mut spool = open_clean(&config);
        append_n(&mut spool, 1..=9, 100);
    }
    let files = segments(dir.path());
    assert_eq!(files.len(), 3);
    // Flip a payload byte of record 2, in the middle of the first segment.
    let first = &files[0].0;
    let mut bytes = fs::read(first).expect("read segment");
    let at = (FRAME + FRAME_HEADER_BYTES + 3) as usize;
    bytes[at] ^= 0x01;
    fs::write(first, &bytes).expect("write segment");

    let Opened {
        mut spool,
        repaired,
    } = open(&config);
    let repair = repaired.expect("the damage is reported");
    assert_eq!(repair.segments.len(), 1);
    let segment = &repair.segments[0];
    assert_eq!(&segment.path, first);
    assert!(!segment.torn_tail);
    assert_eq!(segment.offset, FRAME);
    assert_eq!(segment.bytes_dropped, 2 * FRAME);
    assert!(matches!(segment.defect, Defect::ChecksumMismatch { .. }));

    // Record 3 shared the segment after the bad frame and is lost; the later segments are not.
    let entries = peek_all(&mut spool);
    assert_eq!(seqs(&entries), vec![1, 4, 5, 6, 7, 8, 9]);
    for entry in &entries {
        assert_eq!(entry.payload, payload(entry.seq));
    }
    let stats = spool.stats();
    assert_eq!(stats.records, 7);
    assert_eq!(stats.bytes, 7 * FRAME);
    assert_eq!(stats.next_seq, 10);
    assert_eq!(spool.append(&payload(10), 200).expect("append"), 10);

    // The repair is durable: the next open finds nothing to fix.
    drop(spool);
    let mut spool = open_clean(&config);
    assert_eq!(seqs(&peek_all(&mut spool)), vec![1, 4, 5, 6, 7, 8, 9, 10]);
}

#[test]
fn a_record_damaged_after_open_is_reported_by_peek() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(dir.path(), 1 << 20, 1 << 16);
    let mut spool = open_clean(&config);
    append_n(&mut spool, 1..=3, 100);
    let (path, _) = segments(dir.path()).remove(0);
    let mut bytes = fs::read(&path).expect("read segment");
    bytes[(FRAME + FRAME_HEADER_BYTES) as usize] ^= 0x80;
    fs::write(&path, &bytes).expect("write segment");

    // Record 2 is damaged: the batch stops before it...
    assert_eq!(seqs(&peek_all(&mut spool)), vec![1]);
    spool.ack(1).expect("ack");
    // ...then it is named, and acknowledging it skips it.
    match spool.peek(10, usize::MAX) {
        Err(Error::Corrupt {
            seq: 2,
            offset,
            defect: Defect::ChecksumMismatch { .. },
            ..
        }) => assert_eq!(offset, FRAME),
        other => panic!("expected record 2 to be reported damaged, got {other:?}"),
    }
    spool.ack(2).expect("skip the damaged record");
    assert_eq!(seqs(&peek_all(&mut spool)), vec![3]);
}

#[test]
fn full_spool_refuses_appends_until_acknowledged() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Room for three frames, one frame per segment so that each ack frees one.
    let config = config(dir.path(), 3 * FRAME, FRAME);
    let mut spool = open_clean(&config);
    append_n(&mut spool, 1..=3, 100);
    let before_files = segments(dir.path());
    let before_stats = spool.stats();

    let refused = spool.append(&payload(4), 200).expect_err("full");
    match refused {
        Error::Full {
            needed,
            used,
            capacity,
        } => assert_eq!((needed, used, capacity), (FRAME, 3 * FRAME, 3 * FRAME)),
        other => panic!("expected Full, got {other:?}"),
    }
    assert!(refused.to_string().contains("full"));
    assert_eq!(segments(dir.path()), before_files);
    assert_eq!(spool.stats(), before_stats);
    // An empty payload still needs its header.
    assert!(matches!(spool.append(b"", 200), Err(Error::Full { .. })));

    spool.ack(1).expect("ack");
    assert_eq!(spool.stats().bytes, 2 * FRAME);
    // The refused appends consumed no seq.
    assert_eq!(spool.append(&payload(4), 300).expect("append"), 4);
    assert!(matches!(
        spool.append(&payload(5), 300),
        Err(Error::Full { .. })
    ));
    assert_eq!(seqs(&peek_all(&mut spool)), vec![2, 3, 4]);
}

#[test]
fn a_single_segment_spool_frees_space_when_fully_acknowledged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(dir.path(), 3 * FRAME, 1 << 20);
    let mut spool = open_clean(&config);
    append_n(&mut spool, 1..=3, 100);
    assert!(matches!(
        spool.append(&payload(4), 100),
        Err(Error::Full { .. })
    ));
    // Part of the only segment acknowledged: nothing can be freed yet.
    spool.ack(2).expect("ack");
    assert!(matches!(
        spool.append(&payload(4), 100),
        Err(Error::Full { .. })
    ));
    spool.ack(3).expect("ack");
    assert!(segments(dir.path()).is_empty());
    assert_eq!(spool.append(&payload(4), 100).expect("append"), 4);
}

#[test]
fn oversized_records_are_refused_as_too_large() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(dir.path(), 200, 100);
    let mut spool = open_clean(&config);
    match spool.append(&[7u8; 300], 0) {
        Err(Error::TooLarge { bytes, capacity }) => assert_eq!((bytes, capacity), (324, 200)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // The payload alone fits, but not with its header.
    assert!(matches!(
        spool.append(&[7u8; 190], 0),
        Err(Error::TooLarge { bytes: 214, .. })
    ));
    assert!(segments(dir.path()).is_empty());
    assert_eq!(spool.stats().next_seq, 1);

    // Larger than a segment but within capacity: it gets a segment of its own.
    assert_eq!(spool.append(&[7u8; 140], 0).expect("append"), 1);
    assert_eq!(spool.append(b"small", 0).expect("append"), 2);
    let files = segments(dir.path());
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].1, FRAME_HEADER_BYTES + 140);
    drop(spool);
    let mut spool = open_clean(&config);
    assert_eq!(seqs(&peek_all(&mut spool)), vec![1, 2]);
}

#[test]
fn append_batch_is_all_or_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Room for five frames, two per segment.
    let config = config(dir.path(), 5 * FRAME, 2 * FRAME);
    let mut spool = open_clean(&config);
    assert!(spool.append_batch(&[], 0).expect("empty batch").is_empty());
    append_n(&mut spool, 1..=2, 100);
    let before_files = segments(dir.path());
    let before_stats = spool.stats();

    let four: Vec<Vec<u8>> = (3..=6).map(payload).collect();
    match spool.append_batch(&four, 200) {
        Err(Error::Full {
            needed,
            used,
            capacity,
        }) => assert_eq!((needed, used, capacity), (4 * FRAME, 2 * FRAME, 5 * FRAME)),
        other => panic!("expected Full, got {other:?}"),
    }
    let with_oversize = vec![payload(3), vec![0u8; 1_000]];
    assert!(matches!(
        spool.append_batch(&with_oversize, 200),
        Err(Error::TooLarge { .. })
    ));
    assert_eq!(segments(dir.path()), before_files);
    assert_eq!(spool.stats(), before_stats);

    // Three fit, spread over two new segments.
    let three: Vec<Vec<u8>> = (3..=5).map(payload).collect();
    assert_eq!(
        spool.append_batch(&three, 300).expect("batch"),
        vec![3, 4, 5]
    );
    let files = segments(dir.path());
    let names: Vec<String> = files.iter().map(|(path, _)| file_name(path)).collect();
    assert_eq!(
        names,
        vec![
            "00000000000000000001.seg",
            "00000000000000000003.seg",
            "00000000000000000005.seg"
        ]
    );
    assert_eq!(spool.stats().bytes, 5 * FRAME);

    drop(spool);
    let mut spool = open_clean(&config);
    let entries = peek_all(&mut spool);
    assert_eq!(seqs(&entries), vec![1, 2, 3, 4, 5]);
    for entry in &entries[2..] {
        assert_eq!(entry.payload, payload(entry.seq));
        assert_eq!(entry.appended_at_ms, 300);
    }
}

#[test]
fn a_batch_fills_the_newest_segment_before_starting_another() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(dir.path(), 1 << 20, 3 * FRAME);
    let mut spool = open_clean(&config);
    append_n(&mut spool, 1..=1, 0);
    let batch: Vec<Vec<u8>> = (2..=5).map(payload).collect();
    assert_eq!(
        spool.append_batch(&batch, 0).expect("batch"),
        vec![2, 3, 4, 5]
    );
    let files = segments(dir.path());
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].1, 3 * FRAME);
    assert_eq!(file_name(&files[1].0), "00000000000000000004.seg");
    assert_eq!(files[1].1, 2 * FRAME);
    drop(spool);
    let mut spool = open_clean(&config);
    assert_eq!(seqs(&peek_all(&mut spool)), vec![1, 2, 3, 4, 5]);
    // After a reopen, appends continue in the newest segment while it has room.
    append_n(&mut spool, 6..=6, 0);
    assert_eq!(segments(dir.path()).len(), 2);
}

#[test]
fn a_damaged_ack_file_is_refused_and_bad_configs_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("ack"), "not a number").expect("write ack");
    assert!(matches!(
        Spool::open(Config::new(dir.path())),
        Err(Error::CorruptAck { .. })
    ));
    assert!(matches!(
        Spool::open(config(dir.path(), 10, 100)),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        Spool::open(config(dir.path(), 1_000, 0)),
        Err(Error::InvalidConfig { .. })
    ));

    let missing = dir.path().join("created/on/open");
    let opened = Spool::open(Config::new(&missing)).expect("open creates the directory");
    assert!(missing.is_dir());
    assert_eq!(opened.spool.stats().capacity_bytes, 256 * 1024 * 1024);
}
