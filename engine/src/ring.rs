//! Single-producer single-consumer ring of f32 samples in a shared-memory file.
//!
//! The segment is a plain file (under `/dev/shm` by default) so that another process
//! can map it; its layout is documented in `engine/README.md`. Positions are monotonic
//! sample counters, so `write_pos - read_pos` is the readable span and no slot is wasted.
//! When the reader falls behind, the writer drops the newest samples (it never moves the
//! reader's position) and adds exactly that many to the overrun counter.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::MmapMut;

pub const MAGIC: [u8; 8] = *b"V2MRING\0";
pub const VERSION: u32 = 1;
pub const HEADER_SIZE: usize = 256;
/// File names are `v2m-ring-<pid>-<sequence>` so stale ones can be matched to their owner.
pub const NAME_PREFIX: &str = "v2m-ring-";

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_HEADER_SIZE: usize = 12;
const OFF_CAPACITY: usize = 16;
const OFF_SAMPLE_RATE: usize = 24;
const OFF_CHANNELS: usize = 28;
const OFF_OWNER_PID: usize = 32;
const OFF_STATE: usize = 36;
// The writer's fields share one cache line and the reader's position has its own,
// so the two sides never contend for a line.
const OFF_WRITE_POS: usize = 64;
const OFF_OVERRUNS: usize = 72;
const OFF_LEVEL_RMS: usize = 80;
const OFF_LEVEL_PEAK: usize = 84;
const OFF_LAST_WRITE_NS: usize = 88;
const OFF_READ_POS: usize = 128;

/// Lifecycle of the producer, stored in the header so any reader can see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Running = 0,
    Ended = 1,
    Failed = 2,
}

/// Why an existing segment was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    TooShort(u64),
    Magic,
    Version(u32),
    Layout(String),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(len) => write!(f, "{len} bytes is too short for a v2m ring header"),
            Self::Magic => f.write_str("not a v2m ring (wrong magic)"),
            Self::Version(v) => write!(f, "ring version {v} is not supported (expected {VERSION})"),
            Self::Layout(why) => write!(f, "corrupt ring header: {why}"),
        }
    }
}

#[derive(Debug)]
pub enum OpenError {
    Io(io::Error),
    Header(HeaderError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => e.fmt(f),
            Self::Header(e) => e.fmt(f),
        }
    }
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// One mapped segment. The mapping lives as long as any handle (or numpy view) holds
/// the `Arc`; `unlink` removes only the name.
pub struct Segment {
    map: MmapMut,
    path: PathBuf,
    capacity: u64,
}

// SAFETY: all shared mutable state is reached through atomics in the header, and the
// sample area is written only by the single producer in the span the consumer does not read.
unsafe impl Send for Segment {}
unsafe impl Sync for Segment {}

impl Segment {
    /// Create a new segment `dir/v2m-ring-<pid>-<n>` (mode 0600, never an existing file).
    pub fn create(dir: &Path, capacity: u64, sample_rate: u32) -> io::Result<Arc<Self>> {
        if capacity == 0 || capacity > (u64::MAX - HEADER_SIZE as u64) / 4 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("ring capacity {capacity} samples is out of range"),
            ));
        }
        let (file, path) = create_unique(dir)?;
        let len = HEADER_SIZE as u64 + capacity * 4;
        let mapped = file.set_len(len).and_then(|()| {
            // SAFETY: the file is ours (created exclusively, 0600) and sized above.
            unsafe { MmapMut::map_mut(&file) }
        });
        let mut map = match mapped {
            Ok(map) => map,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        map[OFF_MAGIC..OFF_MAGIC + 8].copy_from_slice(&MAGIC);
        put_u32(&mut map, OFF_VERSION, VERSION);
        put_u32(&mut map, OFF_HEADER_SIZE, HEADER_SIZE as u32);
        map[OFF_CAPACITY..OFF_CAPACITY + 8].copy_from_slice(&capacity.to_ne_bytes());
        put_u32(&mut map, OFF_SAMPLE_RATE, sample_rate);
        put_u32(&mut map, OFF_CHANNELS, 1);
        put_u32(&mut map, OFF_OWNER_PID, std::process::id());
        Ok(Arc::new(Self {
            map,
            path,
            capacity,
        }))
    }

    /// Map an existing segment, refusing anything whose header is not a sound v2m ring.
    pub fn open(path: &Path) -> Result<Arc<Self>, OpenError> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        if len < HEADER_SIZE as u64 {
            return Err(OpenError::Header(HeaderError::TooShort(len)));
        }
        // SAFETY: the length was checked; the header is validated before any use.
        let map = unsafe { MmapMut::map_mut(&file)? };
        let capacity = validate(&map, len).map_err(OpenError::Header)?;
        Ok(Arc::new(Self {
            map,
            path: path.to_owned(),
            capacity,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn sample_rate(&self) -> u32 {
        get_u32(&self.map, OFF_SAMPLE_RATE)
    }

    pub fn owner_pid(&self) -> u32 {
        get_u32(&self.map, OFF_OWNER_PID)
    }

    pub fn unlink(&self) -> io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn u64_at(&self, off: usize) -> &AtomicU64 {
        // SAFETY: `off` is an 8-aligned offset inside the header of a page-aligned mapping.
        unsafe { &*(self.map.as_ptr().add(off) as *const AtomicU64) }
    }

    fn u32_at(&self, off: usize) -> &AtomicU32 {
        // SAFETY: as above, 4-aligned.
        unsafe { &*(self.map.as_ptr().add(off) as *const AtomicU32) }
    }

    fn data(&self) -> *mut f32 {
        // SAFETY: the sample area starts right after the header and holds `capacity` f32s.
        unsafe { self.map.as_ptr().add(HEADER_SIZE) as *mut f32 }
    }

    pub fn write_pos(&self) -> u64 {
        self.u64_at(OFF_WRITE_POS).load(Ordering::Acquire)
    }

    pub fn read_pos(&self) -> u64 {
        self.u64_at(OFF_READ_POS).load(Ordering::Acquire)
    }

    pub fn readable(&self) -> u64 {
        self.write_pos() - self.read_pos()
    }

    pub fn overruns(&self) -> u64 {
        self.u64_at(OFF_OVERRUNS).load(Ordering::Relaxed)
    }

    /// (rms, peak) of the most recent chunk written.
    pub fn level(&self) -> (f32, f32) {
        let rms = self.u32_at(OFF_LEVEL_RMS).load(Ordering::Relaxed);
        let peak = self.u32_at(OFF_LEVEL_PEAK).load(Ordering::Relaxed);
        (f32::from_bits(rms), f32::from_bits(peak))
    }

    /// CLOCK_MONOTONIC nanoseconds of the most recent write.
    pub fn last_write_ns(&self) -> u64 {
        self.u64_at(OFF_LAST_WRITE_NS).load(Ordering::Acquire)
    }

    pub fn state(&self) -> State {
        match self.u32_at(OFF_STATE).load(Ordering::Acquire) {
            0 => State::Running,
            1 => State::Ended,
            _ => State::Failed,
        }
    }

    /// Publish the end of the stream. Release ordering makes every earlier write
    /// visible to a reader that observes the new state.
    pub fn set_state(&self, state: State) {
        self.u32_at(OFF_STATE)
            .store(state as u32, Ordering::Release);
    }
}

fn put_u32(map: &mut MmapMut, off: usize, v: u32) {
    map[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn get_u32(map: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(map[off..off + 4].try_into().expect("4 bytes"))
}

fn get_u64(map: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(map[off..off + 8].try_into().expect("8 bytes"))
}

/// Check a mapped header against the file length; return the capacity in samples.
pub fn validate(map: &[u8], file_len: u64) -> Result<u64, HeaderError> {
    if map.len() < HEADER_SIZE {
        return Err(HeaderError::TooShort(map.len() as u64));
    }
    if map[OFF_MAGIC..OFF_MAGIC + 8] != MAGIC {
        return Err(HeaderError::Magic);
    }
    let version = get_u32(map, OFF_VERSION);
    if version != VERSION {
        return Err(HeaderError::Version(version));
    }
    let layout = |why: String| Err(HeaderError::Layout(why));
    let header_size = get_u32(map, OFF_HEADER_SIZE);
    if header_size as usize != HEADER_SIZE {
        return layout(format!("header size {header_size}, expected {HEADER_SIZE}"));
    }
    let capacity = get_u64(map, OFF_CAPACITY);
    let expected = capacity
        .checked_mul(4)
        .and_then(|b| b.checked_add(HEADER_SIZE as u64));
    if capacity == 0 || expected != Some(file_len) {
        return layout(format!(
            "capacity {capacity} does not match {file_len} bytes"
        ));
    }
    if get_u32(map, OFF_SAMPLE_RATE) == 0 {
        return layout("sample rate 0".into());
    }
    let channels = get_u32(map, OFF_CHANNELS);
    if channels != 1 {
        return layout(format!("{channels} channels, expected 1"));
    }
    let (w, r) = (get_u64(map, OFF_WRITE_POS), get_u64(map, OFF_READ_POS));
    if r > w || w - r > capacity {
        return layout(format!(
            "positions write={w} read={r} exceed capacity {capacity}"
        ));
    }
    if get_u32(map, OFF_STATE) > State::Failed as u32 {
        return layout(format!("state {}", get_u32(map, OFF_STATE)));
    }
    Ok(capacity)
}

fn create_unique(dir: &Path) -> io::Result<(File, PathBuf)> {
    use std::sync::atomic::AtomicUsize;
    static SEQUENCE: AtomicUsize = AtomicUsize::new(0);
    loop {
        let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{NAME_PREFIX}{}-{n}", std::process::id()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            // A leftover of an earlier process that had our pid: pick the next number.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            Ok(file) => return Ok((file, path)),
        }
    }
}

/// The writing half. Exactly one exists per segment in this process.
pub struct Producer {
    seg: Arc<Segment>,
    /// Last read position seen: the reader's cache line is loaded only when this
    /// stale value says the ring is too full, not on every write.
    read_seen: u64,
}

/// The reading half. Exactly one exists per segment.
pub struct Consumer {
    seg: Arc<Segment>,
}

/// Split a freshly created segment into its two halves.
pub fn split(seg: Arc<Segment>) -> (Producer, Consumer) {
    (
        Producer {
            seg: seg.clone(),
            read_seen: 0,
        },
        Consumer { seg },
    )
}

/// A consumer for a segment mapped with [`Segment::open`] (another process's ring).
pub fn attach(seg: Arc<Segment>) -> Consumer {
    Consumer { seg }
}

impl Producer {
    pub fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    /// How many of `wanted` samples fit now (refreshing the reader's position if needed).
    pub fn fits(&mut self, wanted: usize) -> usize {
        let seg = &*self.seg;
        let w = seg.u64_at(OFF_WRITE_POS).load(Ordering::Relaxed);
        let mut free = seg.capacity - (w - self.read_seen);
        if free < wanted as u64 {
            self.read_seen = seg.read_pos();
            free = seg.capacity - (w - self.read_seen);
        }
        wanted.min(free as usize)
    }

    /// Append as many samples as fit; count the rest as overruns. Returns how many were written.
    pub fn write(&mut self, samples: &[f32]) -> usize {
        let n = self.fits(samples.len());
        let seg = &*self.seg;
        let cap = seg.capacity;
        let w = seg.u64_at(OFF_WRITE_POS).load(Ordering::Relaxed);
        let start = (w % cap) as usize;
        let first = n.min(cap as usize - start);
        // SAFETY: [w, w+n) lies in free space the consumer does not read until
        // write_pos is published below; the two copies stay inside the sample area.
        unsafe {
            std::ptr::copy_nonoverlapping(samples.as_ptr(), seg.data().add(start), first);
            std::ptr::copy_nonoverlapping(samples.as_ptr().add(first), seg.data(), n - first);
        }
        let dropped = (samples.len() - n) as u64;
        if dropped > 0 {
            seg.u64_at(OFF_OVERRUNS)
                .fetch_add(dropped, Ordering::Relaxed);
        }
        if !samples.is_empty() {
            let (rms, peak) = level_of(samples);
            seg.u32_at(OFF_LEVEL_RMS)
                .store(rms.to_bits(), Ordering::Relaxed);
            seg.u32_at(OFF_LEVEL_PEAK)
                .store(peak.to_bits(), Ordering::Relaxed);
        }
        seg.u64_at(OFF_LAST_WRITE_NS)
            .store(monotonic_ns(), Ordering::Relaxed);
        seg.u64_at(OFF_WRITE_POS)
            .store(w + n as u64, Ordering::Release);
        n
    }
}

impl Consumer {
    pub fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    /// The readable span as (offset of the first part, its length, length of the wrapped part).
    pub fn spans(&self) -> (usize, usize, usize) {
        let seg = &*self.seg;
        let r = seg.u64_at(OFF_READ_POS).load(Ordering::Relaxed);
        let avail = (seg.write_pos() - r) as usize;
        let start = (r % seg.capacity) as usize;
        let first = avail.min(seg.capacity as usize - start);
        (start, first, avail - first)
    }

    /// The samples at `offset..offset+len` of the sample area.
    ///
    /// # Safety
    /// The range must come from [`Consumer::spans`] and the slice must not be used after
    /// [`Consumer::consume`] has released it to the producer.
    pub unsafe fn slice(&self, offset: usize, len: usize) -> &[f32] {
        std::slice::from_raw_parts(self.seg.data().add(offset), len)
    }

    /// Pointer to the start of the sample area, for building views.
    pub fn data_ptr(&self) -> *const f32 {
        self.seg.data()
    }

    /// Release `n` samples to the producer; fails if fewer are readable.
    pub fn consume(&mut self, n: u64) -> Result<(), u64> {
        let seg = &*self.seg;
        let r = seg.u64_at(OFF_READ_POS).load(Ordering::Relaxed);
        let avail = seg.write_pos() - r;
        if n > avail {
            return Err(avail);
        }
        seg.u64_at(OFF_READ_POS).store(r + n, Ordering::Release);
        Ok(())
    }
}

/// (rms, peak) of a chunk. Eight independent f32 lanes let the compiler vectorise it
/// (it runs on every chunk in the capture thread); each block of 1024 samples is summed
/// into an f64 so long chunks keep their precision.
pub fn level_of(samples: &[f32]) -> (f32, f32) {
    const LANES: usize = 8;
    let (mut total, mut peak) = (0.0f64, [0.0f32; LANES]);
    for block in samples.chunks(1024) {
        let mut sum = [0.0f32; LANES];
        let lanes = block.chunks_exact(LANES);
        for (i, &s) in lanes.remainder().iter().enumerate() {
            sum[i] += s * s;
            peak[i] = if s.abs() > peak[i] { s.abs() } else { peak[i] };
        }
        for frame in lanes {
            for i in 0..LANES {
                sum[i] += frame[i] * frame[i];
                peak[i] = if frame[i].abs() > peak[i] {
                    frame[i].abs()
                } else {
                    peak[i]
                };
            }
        }
        total += sum.iter().map(|&v| f64::from(v)).sum::<f64>();
    }
    let peak = peak.iter().fold(0.0f32, |m, &v| if v > m { v } else { m });
    ((total / samples.len().max(1) as f64).sqrt() as f32, peak)
}

pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: CLOCK_MONOTONIC is always available and `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Remove segments in `dir` whose owning process (pid in the name) no longer exists.
/// Files that merely resemble ours are left alone unless their header is a v2m ring
/// owned by a dead process, so a foreign file with our prefix is never deleted.
pub fn remove_stale(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(pid) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(NAME_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(seg) = Segment::open(&path) else {
            continue;
        };
        if !process_alive(pid) && !process_alive(seg.owner_pid()) && seg.unlink().is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
