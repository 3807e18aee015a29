//! Single-producer single-consumer ring of f32 samples in a shared-memory file.
//!
//! The segment is a named file (under `/dev/shm` by default), created and mapped by the
//! one process that both writes and reads it: the producer is the engine's own capture or
//! file thread, the consumer the Python reader of that same process. The name exists so
//! that a daemon that died can be cleaned up after ([`remove_stale`] reads the header of
//! such a file without mapping it); no other process attaches to a ring. The layout is
//! documented in `engine/README.md`. Positions are monotonic sample counters, so
//! `write_pos - read_pos` is the readable span and no slot is wasted. When the reader
//! falls behind, the writer drops the newest samples (it never moves the reader's
//! position) and adds exactly that many to the overrun counter.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
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
const OFF_READ_POS: usize = 128;

/// Lifecycle of the producer, stored in the header beside the positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Running = 0,
    Ended = 1,
    Failed = 2,
}

/// Why an existing file was not taken for a v2m ring.
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

/// One mapped segment, created by this process. The mapping lives as long as any handle
/// (or numpy view) holds the `Arc`; `unlink` removes only the name.
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

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn unlink(&self) -> io::Result<()> {
        remove(&self.path)
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

    fn write_pos(&self) -> u64 {
        self.u64_at(OFF_WRITE_POS).load(Ordering::Acquire)
    }

    fn read_pos(&self) -> u64 {
        self.u64_at(OFF_READ_POS).load(Ordering::Acquire)
    }

    /// Samples written and not yet consumed: at most the capacity, whatever the
    /// mapped positions say (see [`Consumer::spans`]).
    pub fn readable(&self) -> u64 {
        self.write_pos()
            .wrapping_sub(self.read_pos())
            .min(self.capacity)
    }

    pub fn overruns(&self) -> u64 {
        self.u64_at(OFF_OVERRUNS).load(Ordering::Relaxed)
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

/// Check a header (at least its first [`HEADER_SIZE`] bytes) against the file length;
/// return the capacity in samples.
fn validate(header: &[u8], file_len: u64) -> Result<u64, HeaderError> {
    if header.len() < HEADER_SIZE {
        return Err(HeaderError::TooShort(header.len() as u64));
    }
    if header[OFF_MAGIC..OFF_MAGIC + 8] != MAGIC {
        return Err(HeaderError::Magic);
    }
    let version = get_u32(header, OFF_VERSION);
    if version != VERSION {
        return Err(HeaderError::Version(version));
    }
    let layout = |why: String| Err(HeaderError::Layout(why));
    let header_size = get_u32(header, OFF_HEADER_SIZE);
    if header_size as usize != HEADER_SIZE {
        return layout(format!("header size {header_size}, expected {HEADER_SIZE}"));
    }
    let capacity = get_u64(header, OFF_CAPACITY);
    let expected = capacity
        .checked_mul(4)
        .and_then(|b| b.checked_add(HEADER_SIZE as u64));
    if capacity == 0 || expected != Some(file_len) {
        return layout(format!(
            "capacity {capacity} does not match {file_len} bytes"
        ));
    }
    if get_u32(header, OFF_SAMPLE_RATE) == 0 {
        return layout("sample rate 0".into());
    }
    let channels = get_u32(header, OFF_CHANNELS);
    if channels != 1 {
        return layout(format!("{channels} channels, expected 1"));
    }
    let (w, r) = (
        get_u64(header, OFF_WRITE_POS),
        get_u64(header, OFF_READ_POS),
    );
    if r > w || w - r > capacity {
        return layout(format!(
            "positions write={w} read={r} exceed capacity {capacity}"
        ));
    }
    if get_u32(header, OFF_STATE) > State::Failed as u32 {
        return layout(format!("state {}", get_u32(header, OFF_STATE)));
    }
    Ok(capacity)
}

/// The owner pid recorded in the ring file at `path`, once its header is validated
/// against the file's size. The header is read with `read(2)`, never mapped: a file that
/// is truncated or rewritten meanwhile is refused with an error (a short read is
/// [`HeaderError::TooShort`]) and cannot fault this process the way a stale mapping would.
pub fn owner_of(path: &Path) -> Result<u32, OpenError> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut header = Vec::with_capacity(HEADER_SIZE);
    file.by_ref()
        .take(HEADER_SIZE as u64)
        .read_to_end(&mut header)?;
    validate(&header, len).map_err(OpenError::Header)?;
    Ok(get_u32(&header, OFF_OWNER_PID))
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

/// The writing half: held by the engine's own capture or file thread, one per segment.
pub struct Producer {
    seg: Arc<Segment>,
    /// Last read position seen: the reader's cache line is loaded only when this
    /// stale value says the ring is too full, not on every write.
    read_seen: u64,
}

/// The reading half: held by the Python reader of the same process, one per segment.
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

impl Producer {
    pub fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    /// How many of `wanted` samples fit now (refreshing the reader's position if needed).
    pub fn fits(&mut self, wanted: usize) -> usize {
        let seg = &*self.seg;
        let w = seg.u64_at(OFF_WRITE_POS).load(Ordering::Relaxed);
        // Clamped like the reader's span: whatever the mapped positions say, what is
        // written fits in the sample area.
        let free = |read: u64| seg.capacity - w.wrapping_sub(read).min(seg.capacity);
        let mut free_now = free(self.read_seen);
        if free_now < wanted as u64 {
            self.read_seen = seg.read_pos();
            free_now = free(self.read_seen);
        }
        wanted.min(free_now as usize)
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
        seg.u64_at(OFF_WRITE_POS)
            .store(w.wrapping_add(n as u64), Ordering::Release);
        n
    }
}

impl Consumer {
    pub fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    /// Samples readable from `r`. Only this process's producer moves the write
    /// position, but the mapping is a file: whatever it holds, the span never exceeds the
    /// capacity, so a view built from it stays inside the sample area.
    fn available(&self, r: u64) -> u64 {
        self.seg.write_pos().wrapping_sub(r).min(self.seg.capacity)
    }

    /// The readable span as (offset of the first part, its length, length of the wrapped
    /// part); both parts lie inside the sample area.
    pub fn spans(&self) -> (usize, usize, usize) {
        let seg = &*self.seg;
        let r = seg.u64_at(OFF_READ_POS).load(Ordering::Relaxed);
        let avail = self.available(r) as usize;
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
        let avail = self.available(r);
        if n > avail {
            return Err(avail);
        }
        seg.u64_at(OFF_READ_POS)
            .store(r.wrapping_add(n), Ordering::Release);
        Ok(())
    }
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
        let Ok(owner) = owner_of(&path) else {
            continue;
        };
        if !process_alive(pid) && !process_alive(owner) && remove(&path).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Remove a name; one already gone counts as removed.
fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
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
