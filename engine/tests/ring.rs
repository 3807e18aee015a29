//! The shared-memory ring: wrap-around, exact overrun accounting, concurrent SPSC
//! transfer, spans that stay inside the mapping whatever the file says, and refusal of
//! foreign, corrupt or truncated files when stale segments are looked at.

use std::collections::VecDeque;
use std::path::PathBuf;

use _engine::ring::{self, Consumer, HeaderError, OpenError, Segment, HEADER_SIZE};
use proptest::prelude::*;

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("v2m-ring-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn new_ring(capacity: u64) -> (ring::Producer, Consumer) {
    ring::split(Segment::create(&scratch_dir(), capacity, 16_000).unwrap())
}

fn read_all(c: &mut Consumer) -> Vec<f32> {
    let (off, first, wrapped) = c.spans();
    // SAFETY: ranges from spans(), copied before consume().
    let mut out = unsafe { c.slice(off, first) }.to_vec();
    out.extend_from_slice(unsafe { c.slice(0, wrapped) });
    c.consume(out.len() as u64).unwrap();
    out
}

#[test]
fn readable_span_wraps_into_two_parts() {
    let (mut p, mut c) = new_ring(8);
    assert_eq!(p.write(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), 6);
    assert_eq!(read_all(&mut c), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(p.write(&[7.0, 8.0, 9.0, 10.0, 11.0]), 5);
    assert_eq!(c.spans(), (6, 2, 3));
    assert_eq!(read_all(&mut c), [7.0, 8.0, 9.0, 10.0, 11.0]);
    assert_eq!(c.segment().overruns(), 0);
    c.segment().unlink().unwrap();
}

#[test]
fn a_full_ring_drops_the_newest_samples_and_counts_them() {
    let (mut p, mut c) = new_ring(4);
    assert_eq!(p.write(&[1.0, 2.0, 3.0]), 3);
    assert_eq!(p.write(&[4.0, 5.0, 6.0]), 1);
    assert_eq!(c.segment().overruns(), 2);
    assert_eq!(read_all(&mut c), [1.0, 2.0, 3.0, 4.0]);
    // Once read, the slots are free again; the counter keeps what was lost.
    assert_eq!(p.write(&[7.0, 8.0, 9.0, 10.0]), 4);
    assert_eq!(c.segment().overruns(), 2);
    assert_eq!(read_all(&mut c), [7.0, 8.0, 9.0, 10.0]);
    assert!(c.consume(1).is_err(), "nothing left to consume");
    c.segment().unlink().unwrap();
}

#[test]
fn segment_is_private_and_records_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let (p, _c) = new_ring(16);
    let seg = p.segment();
    let mode = std::fs::metadata(seg.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(ring::owner_of(seg.path()).unwrap(), std::process::id());
    let len = std::fs::metadata(seg.path()).unwrap().len();
    assert_eq!(len, HEADER_SIZE as u64 + 16 * 4);
    seg.unlink().unwrap();
}

proptest! {
    /// Any sequence of writes and partial reads matches a bounded-queue model, sample
    /// for sample, and the overrun counter equals exactly what the model dropped.
    #[test]
    fn writes_and_reads_match_a_bounded_queue(
        capacity in 1u64..64,
        ops in prop::collection::vec((0usize..100, 0usize..100), 1..60),
    ) {
        let (mut p, mut c) = new_ring(capacity);
        let mut model: VecDeque<f32> = VecDeque::new();
        let (mut next, mut dropped) = (0u32, 0u64);
        for (write, read) in ops {
            let chunk: Vec<f32> = (0..write).map(|i| (next + i as u32) as f32).collect();
            next += write as u32;
            let fits = (capacity as usize - model.len()).min(write);
            model.extend(&chunk[..fits]);
            dropped += (write - fits) as u64;
            prop_assert_eq!(p.write(&chunk), fits);

            let (off, first, wrapped) = c.spans();
            prop_assert_eq!(first + wrapped, model.len());
            let take = read.min(model.len());
            let mut got = unsafe { c.slice(off, first) }.to_vec();
            got.extend_from_slice(unsafe { c.slice(0, wrapped) });
            got.truncate(take);
            let want: Vec<f32> = model.drain(..take).collect();
            prop_assert_eq!(got, want);
            c.consume(take as u64).unwrap();
            prop_assert_eq!(c.segment().overruns(), dropped);
        }
        c.segment().unlink().unwrap();
    }

    /// A producer thread and a consumer thread move a counting sequence through a small
    /// ring; the consumer sees every sample once, in order.
    #[test]
    fn concurrent_producer_and_consumer_lose_nothing(
        capacity in 1u64..256,
        chunks in prop::collection::vec(1usize..97, 1..200),
    ) {
        let (mut p, mut c) = new_ring(capacity);
        let total: usize = chunks.iter().sum();
        let producer = std::thread::spawn(move || {
            let mut next = 0u32;
            for len in chunks {
                let chunk: Vec<f32> = (0..len as u32).map(|i| (next + i) as f32).collect();
                let mut done = 0;
                while done < len {
                    // Write only what fits, as a waiting producer does.
                    let fits = p.fits(len - done);
                    done += p.write(&chunk[done..done + fits]);
                    std::thread::yield_now();
                }
                next += len as u32;
            }
            p
        });
        let mut expected = 0u32;
        while (expected as usize) < total {
            for s in read_all(&mut c) {
                prop_assert_eq!(s, expected as f32);
                expected += 1;
            }
            std::thread::yield_now();
        }
        let p = producer.join().unwrap();
        // The producer retried instead of overrunning, so nothing was counted as lost.
        prop_assert_eq!(p.segment().overruns(), 0);
        prop_assert_eq!(c.segment().readable(), 0);
        p.segment().unlink().unwrap();
    }
}

fn corrupt(offset: usize, bytes: &[u8]) -> Result<u32, OpenError> {
    let (p, _c) = new_ring(32);
    let path = p.segment().path().to_owned();
    let mut raw = std::fs::read(&path).unwrap();
    raw[offset..offset + bytes.len()].copy_from_slice(bytes);
    std::fs::write(&path, &raw).unwrap();
    let opened = ring::owner_of(&path);
    std::fs::remove_file(&path).unwrap();
    opened
}

fn header_error(r: Result<u32, OpenError>) -> HeaderError {
    match r {
        Err(OpenError::Header(e)) => e,
        Err(OpenError::Io(e)) => panic!("expected a header error, got {e}"),
        Ok(_) => panic!("a bad header was accepted"),
    }
}

/// Only this process writes the ring, but its positions live in a file another process
/// of the same user could scribble on: the spans handed out for views stay inside the
/// sample area whatever the positions say.
#[test]
fn spans_stay_inside_the_mapping_whatever_the_file_says() {
    use std::os::unix::fs::FileExt;
    let (mut p, mut c) = new_ring(8);
    p.write(&[1.0, 2.0, 3.0]);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(p.segment().path())
        .unwrap();
    for (write_pos, read_pos) in [(u64::MAX, 0), (1_000_003, 5), (2, 9), (7, u64::MAX)] {
        file.write_all_at(&write_pos.to_ne_bytes(), 64).unwrap();
        file.write_all_at(&read_pos.to_ne_bytes(), 128).unwrap();
        let (offset, first, wrapped) = c.spans();
        assert!(
            offset + first <= 8 && wrapped <= offset,
            "{offset} {first} {wrapped}"
        );
        assert!(c.segment().readable() <= 8);
        assert!(c.consume(9).is_err(), "never more than the capacity");
        assert!(p.write(&[0.0; 20]) <= 8, "nor written past it");
    }
    p.segment().unlink().unwrap();
}

#[test]
fn a_sound_segment_names_its_owner_and_a_truncated_one_is_refused() {
    let (mut p, _c) = new_ring(32);
    p.write(&[0.25, 0.5]);
    let path = p.segment().path().to_owned();
    assert_eq!(ring::owner_of(&path).unwrap(), std::process::id());
    // A copy cut short, in the sample area and inside the header: refused, not mapped.
    let raw = std::fs::read(&path).unwrap();
    let cut = scratch_dir().join("truncated");
    for len in [HEADER_SIZE + 4, HEADER_SIZE - 1, 0] {
        std::fs::write(&cut, &raw[..len]).unwrap();
        let refused = header_error(ring::owner_of(&cut));
        if len >= HEADER_SIZE {
            assert!(matches!(refused, HeaderError::Layout(_)), "{refused}");
        } else {
            assert_eq!(refused, HeaderError::TooShort(len as u64));
        }
    }
    std::fs::remove_file(&cut).unwrap();
    p.segment().unlink().unwrap();
}

#[test]
fn foreign_and_corrupt_headers_are_refused() {
    assert_eq!(header_error(corrupt(0, b"NOTRING\0")), HeaderError::Magic);
    assert_eq!(
        header_error(corrupt(8, &7u32.to_ne_bytes())),
        HeaderError::Version(7)
    );
    // Capacity that disagrees with the file size.
    assert!(matches!(
        header_error(corrupt(16, &1000u64.to_ne_bytes())),
        HeaderError::Layout(_)
    ));
    // Two channels in what must be a mono ring.
    assert!(matches!(
        header_error(corrupt(28, &2u32.to_ne_bytes())),
        HeaderError::Layout(_)
    ));
    // Read position ahead of the write position.
    assert!(matches!(
        header_error(corrupt(128, &5u64.to_ne_bytes())),
        HeaderError::Layout(_)
    ));
    // Unused bits of u64 (huge capacity) must not overflow the size check.
    assert!(matches!(
        header_error(corrupt(16, &u64::MAX.to_ne_bytes())),
        HeaderError::Layout(_)
    ));

    let short = scratch_dir().join("short");
    std::fs::write(&short, b"V2MRING\0").unwrap();
    assert_eq!(
        header_error(ring::owner_of(&short)),
        HeaderError::TooShort(8)
    );
    std::fs::remove_file(&short).unwrap();
}

#[test]
fn stale_segments_of_dead_processes_are_removed_and_others_kept() {
    let dir = scratch_dir().join("stale");
    std::fs::create_dir_all(&dir).unwrap();
    let (live, _c) = ring::split(Segment::create(&dir, 8, 16_000).unwrap());
    // A dead owner: rewrite a copy with a pid that cannot exist (beyond pid_max).
    let dead_pid: u32 = 0x3fff_fff0;
    let mut raw = std::fs::read(live.segment().path()).unwrap();
    raw[32..36].copy_from_slice(&dead_pid.to_ne_bytes());
    let dead = dir.join(format!("{}{dead_pid}-0", ring::NAME_PREFIX));
    std::fs::write(&dead, &raw).unwrap();
    // Our prefix but not a ring: never deleted.
    let foreign = dir.join(format!("{}{dead_pid}-1", ring::NAME_PREFIX));
    std::fs::write(&foreign, b"someone else's data").unwrap();

    assert_eq!(ring::remove_stale(&dir).unwrap(), 1);
    assert!(!dead.exists());
    assert!(foreign.exists());
    assert!(live.segment().path().exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
