//! v2m audio engine: capture into a lock-free shared-memory ring, read zero-copy from Python.
//!
//! The Python API is what the daemon uses (`v2md/audio/capture.py`): one class, `Ring`,
//! plus two functions. A ring is created together with its producer, a capture device,
//! a WAV file or decoded samples: only that engine thread ever writes into the ring. It
//! runs without the GIL, and Python, in the same process, reads numpy views straight out
//! of the mapped segment. Nothing writes into a ring from Python, and no other process
//! reads one. The ring's own logic is tested in Rust (`engine/tests/ring.rs`).

pub mod capture;
pub mod feed;
pub mod file;
pub mod notify;
pub mod resample;
pub mod ring;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use numpy::ndarray::ArrayView1;
use numpy::npyffi::NPY_ARRAY_WRITEABLE;
use numpy::{PyArray1, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::capture::Capture;
use crate::feed::{Feed, Shared};
use crate::file::Frames;
use crate::resample::TARGET_RATE;
use crate::ring::{Consumer, Producer, Segment, State};

pyo3::create_exception!(
    _engine,
    DeviceError,
    PyException,
    "The capture device is missing, busy, or refused every format."
);
pyo3::create_exception!(
    _engine,
    InputError,
    PyException,
    "An audio file is missing, unreadable or not a supported format."
);
pyo3::create_exception!(
    _engine,
    SegmentError,
    PyException,
    "A ring's shared-memory segment could not be created or removed, or its directory read."
);

/// The readable span: its first part and the part that wrapped to the start.
type TwoViews<'py> = (Bound<'py, PyArray1<f32>>, Bound<'py, PyArray1<f32>>);

/// Where rings are created (the tests of the ring itself use other directories).
const DEFAULT_DIR: &str = "/dev/shm";

/// The engine thread that writes into a ring: its only writer.
enum Writer {
    Device(Capture),
    File(JoinHandle<()>),
    /// The producer was stopped.
    Stopped,
}

/// Keeps the mapping alive for as long as a numpy view over it exists, even after close().
#[pyclass(frozen, module = "v2md._engine")]
struct SegmentOwner {
    _segment: Arc<Segment>,
}

/// A 16 kHz mono float32 ring in a shared-memory segment, written by the engine thread
/// it was created with (capture device, WAV file or decoded samples) and read from Python.
#[pyclass(frozen, module = "v2md._engine")]
struct Ring {
    shared: Arc<Shared>,
    consumer: Mutex<Consumer>,
    writer: Mutex<Writer>,
    input: (u32, u16),
    closed: AtomicBool,
    /// The base object of every view, made once: views are taken on each wake-up.
    view_base: PyOnceLock<Py<SegmentOwner>>,
}

fn segment_error(e: impl std::fmt::Display) -> PyErr {
    SegmentError::new_err(e.to_string())
}

fn new_segment(capacity: u64) -> PyResult<Arc<Segment>> {
    Segment::create(Path::new(DEFAULT_DIR), capacity, TARGET_RATE)
        .map_err(|e| segment_error(format!("cannot create a ring in {DEFAULT_DIR}: {e}")))
}

impl Ring {
    fn build(
        segment: Arc<Segment>,
        writer: impl FnOnce(Producer, &Arc<Shared>) -> PyResult<(Writer, (u32, u16))>,
    ) -> PyResult<Self> {
        let shared = Shared::new(segment.clone()).map_err(segment_error)?;
        let (producer, consumer) = ring::split(segment.clone());
        let built = writer(producer, &shared);
        let (writer, input) = match built {
            Ok(parts) => parts,
            Err(e) => {
                let _ = segment.unlink();
                return Err(e);
            }
        };
        Ok(Self {
            shared,
            consumer: Mutex::new(consumer),
            writer: Mutex::new(writer),
            input,
            closed: AtomicBool::new(false),
            view_base: PyOnceLock::new(),
        })
    }

    fn from_frames(frames: Box<dyn Frames>, capacity: u64, realtime: bool) -> PyResult<Self> {
        let segment = new_segment(capacity)?;
        Self::build(segment, |producer, shared| {
            let input = (frames.rate(), frames.channels());
            let feed = Feed::new(producer, shared.clone(), input.0, input.1, !realtime)
                .map_err(InputError::new_err)?;
            let thread = file::spawn(frames, feed, shared.clone(), realtime)
                .map_err(|e| InputError::new_err(format!("cannot start the file thread: {e}")))?;
            Ok((Writer::File(thread), input))
        })
    }

    fn take_writer(&self) -> Writer {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *writer, Writer::Stopped)
    }

    fn check_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PyValueError::new_err("the ring is closed"));
        }
        Ok(())
    }

    fn lock_consumer(&self) -> std::sync::MutexGuard<'_, Consumer> {
        self.consumer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn view<'py>(
        &self,
        owner: &Bound<'py, PyAny>,
        consumer: &Consumer,
        offset: usize,
        len: usize,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        // SAFETY: offset/len come from spans(), inside the mapped sample area, which `owner`
        // keeps mapped for the array's lifetime.
        let array = unsafe {
            let view = ArrayView1::from_shape_ptr(len, consumer.data_ptr().add(offset));
            PyArray1::borrow_from_array(&view, owner.clone())
        };
        // SAFETY: the array was just created and nobody else holds it yet; clearing the
        // flag is what ndarray.setflags(write=False) does, without a Python call.
        unsafe { (*array.as_array_ptr()).fields.flags &= !NPY_ARRAY_WRITEABLE };
        Ok(array)
    }
}

#[pymethods]
impl Ring {
    /// Capture from the ALSA device `device` (e.g. "default", "plughw:1,0") on a cpal thread.
    #[staticmethod]
    fn capture(py: Python<'_>, device: &str, capacity: u64) -> PyResult<Self> {
        let segment = new_segment(capacity)?;
        Self::build(segment, |producer, shared| {
            let feed_shared = shared.clone();
            let shared = shared.clone();
            let started = py.detach(|| {
                Capture::start(device, shared, move |rate, channels| {
                    Feed::new(producer, feed_shared, rate, channels, false)
                })
            });
            let (capture, opened) =
                started.map_err(|e| DeviceError::new_err(format!("{device}: {e}")))?;
            Ok((Writer::Device(capture), (opened.rate, opened.channels)))
        })
    }

    /// Play a WAV file (any rate, channels, PCM or float) into the ring from an engine thread.
    #[staticmethod]
    fn from_wav(path: PathBuf, capacity: u64, realtime: bool) -> PyResult<Self> {
        let wav = file::open_wav(&path)
            .map_err(|e| InputError::new_err(format!("{}: {e}", path.display())))?;
        Self::from_frames(Box::new(wav), capacity, realtime)
    }

    /// Play samples already decoded to 16 kHz mono float32 into the ring from an engine
    /// thread (they are copied first).
    #[staticmethod]
    fn from_samples(
        samples: PyReadonlyArray1<'_, f32>,
        capacity: u64,
        realtime: bool,
    ) -> PyResult<Self> {
        let samples = samples.as_array().to_vec();
        Self::from_frames(Box::new(file::Decoded::new(samples)), capacity, realtime)
    }

    /// The segment's file, named for this process (for logs; unlinked on close).
    #[getter]
    fn path(&self) -> PathBuf {
        self.shared.segment.path().to_owned()
    }

    /// (rate, channels) the source delivers before conversion to 16 kHz mono.
    #[getter]
    fn input_format(&self) -> (u32, u16) {
        self.input
    }

    /// Samples dropped because the reader fell behind by more than the capacity.
    #[getter]
    fn overruns(&self) -> u64 {
        self.shared.segment.overruns()
    }

    /// True once the producer has ended (stopped, end of file, or failed). Check it
    /// before reading the views: everything written before the end is then visible.
    #[getter]
    fn ended(&self) -> bool {
        self.shared.segment.state() != State::Running
    }

    /// Why the source failed, if it did.
    #[getter]
    fn error(&self) -> Option<String> {
        self.shared.error()
    }

    /// The eventfd that becomes readable when samples arrive or the source ends.
    fn fileno(&self) -> i32 {
        self.shared.data.as_raw_fd()
    }

    /// Reset the eventfd after a wake-up.
    fn drain_wakeups(&self) {
        self.shared.data.drain();
    }

    /// The readable samples as two read-only numpy views into the ring (the second is
    /// empty unless the span wraps). They stay valid until `consume()` releases them.
    fn views<'py>(slf: &Bound<'py, Self>) -> PyResult<TwoViews<'py>> {
        let this = slf.get();
        this.check_open()?;
        let py = slf.py();
        let owner = this
            .view_base
            .get_or_try_init(py, || {
                Py::new(
                    py,
                    SegmentOwner {
                        _segment: this.shared.segment.clone(),
                    },
                )
            })?
            .bind(py)
            .clone()
            .into_any();
        let consumer = this.lock_consumer();
        let mut spans = consumer.spans();
        if spans.1 == 0 {
            this.shared.reader_sleeping();
            spans = consumer.spans();
            if spans.1 != 0 {
                this.shared.reader_awake();
            }
        }
        let (offset, first, wrapped) = spans;
        Ok((
            this.view(&owner, &consumer, offset, first)?,
            this.view(&owner, &consumer, 0, wrapped)?,
        ))
    }

    /// Release `n` samples back to the producer.
    fn consume(&self, n: u64) -> PyResult<()> {
        self.check_open()?;
        self.lock_consumer().consume(n).map_err(|avail| {
            PyValueError::new_err(format!("cannot consume {n} samples: only {avail} readable"))
        })?;
        self.shared.wake_writer();
        Ok(())
    }

    /// Stop the producer; samples already in the ring stay readable.
    fn stop(&self, py: Python<'_>) {
        let writer = self.take_writer();
        let shared = self.shared.clone();
        py.detach(move || halt(&shared, writer));
    }

    /// Stop and remove the segment's name; idempotent. Views still held keep their memory.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.stop(py);
        self.shared.segment.unlink().map_err(segment_error)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            halt(&self.shared, self.take_writer());
            let _ = self.shared.segment.unlink();
        }
    }
}

/// Stop whatever writes into the ring and publish the end to the reader.
fn halt(shared: &Shared, writer: Writer) {
    shared.request_stop();
    match writer {
        Writer::Device(capture) => capture.stop(),
        Writer::File(thread) => {
            let _ = thread.join();
        }
        Writer::Stopped => {}
    }
    if shared.segment.state() == State::Running {
        shared.segment.set_state(State::Ended);
    }
    shared.data.signal();
}

/// Names of the ALSA devices that can capture, "default" first.
#[pyfunction]
fn input_devices(py: Python<'_>) -> PyResult<Vec<String>> {
    py.detach(capture::input_devices)
        .map_err(DeviceError::new_err)
}

/// Remove ring segments in /dev/shm whose owning process is gone; returns how many.
#[pyfunction]
fn remove_stale_segments() -> PyResult<usize> {
    ring::remove_stale(Path::new(DEFAULT_DIR))
        .map_err(|e| segment_error(format!("{DEFAULT_DIR}: {e}")))
}

#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("SAMPLE_RATE", TARGET_RATE)?;
    m.add("DeviceError", m.py().get_type::<DeviceError>())?;
    m.add("InputError", m.py().get_type::<InputError>())?;
    m.add("SegmentError", m.py().get_type::<SegmentError>())?;
    m.add_class::<Ring>()?;
    m.add_function(wrap_pyfunction!(input_devices, m)?)?;
    m.add_function(wrap_pyfunction!(remove_stale_segments, m)?)?;
    Ok(())
}
