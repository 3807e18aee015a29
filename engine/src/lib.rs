//! v2m audio engine: capture into a lock-free shared-memory ring, read zero-copy from Python.
//!
//! The Python API is one class, `Ring`, plus two functions. A ring is created together
//! with its producer (a capture device, a WAV file, decoded samples, or Python itself);
//! the producer runs on its own thread and never touches the GIL, and Python reads
//! numpy views straight out of the mapped segment.

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
    "A shared-memory segment could not be created, or an existing one was refused."
);

/// The readable span: its first part and the part that wrapped to the start.
type TwoViews<'py> = (Bound<'py, PyArray1<f32>>, Bound<'py, PyArray1<f32>>);

const DEFAULT_DIR: &str = "/dev/shm";

/// Who writes into a ring.
enum Writer {
    Python(Producer),
    Device(Capture),
    File(JoinHandle<()>),
    /// Another process's ring, or a producer that already stopped.
    None,
}

/// Keeps the mapping alive for as long as a numpy view over it exists, even after close().
#[pyclass(frozen, module = "v2md._engine")]
struct SegmentOwner {
    _segment: Arc<Segment>,
}

#[pyclass(frozen, module = "v2md._engine")]
struct Ring {
    shared: Arc<Shared>,
    consumer: Mutex<Consumer>,
    writer: Mutex<Writer>,
    input: (u32, u16),
    /// Created here (unlinked on close) rather than attached to another process's ring.
    owner: bool,
    closed: AtomicBool,
    /// The base object of every view, made once: views are taken on each wake-up.
    view_base: PyOnceLock<Py<SegmentOwner>>,
}

fn segment_error(e: impl std::fmt::Display) -> PyErr {
    SegmentError::new_err(e.to_string())
}

fn new_segment(capacity: u64, directory: Option<PathBuf>) -> PyResult<Arc<Segment>> {
    let dir = directory.unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    Segment::create(&dir, capacity, TARGET_RATE)
        .map_err(|e| segment_error(format!("cannot create a ring in {}: {e}", dir.display())))
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
            owner: true,
            closed: AtomicBool::new(false),
            view_base: PyOnceLock::new(),
        })
    }

    fn from_frames(
        frames: Box<dyn Frames>,
        capacity: u64,
        realtime: bool,
        directory: Option<PathBuf>,
    ) -> PyResult<Self> {
        let segment = new_segment(capacity, directory)?;
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
        std::mem::replace(&mut *writer, Writer::None)
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
    /// A ring that Python itself writes into with `write()`.
    #[new]
    #[pyo3(signature = (capacity, directory=None))]
    fn new(capacity: u64, directory: Option<PathBuf>) -> PyResult<Self> {
        let segment = new_segment(capacity, directory)?;
        Self::build(segment, |producer, _| {
            Ok((Writer::Python(producer), (TARGET_RATE, 1)))
        })
    }

    /// Capture from the ALSA device `device` (e.g. "default", "plughw:1,0").
    #[staticmethod]
    #[pyo3(signature = (device, capacity, directory=None))]
    fn capture(
        py: Python<'_>,
        device: &str,
        capacity: u64,
        directory: Option<PathBuf>,
    ) -> PyResult<Self> {
        let segment = new_segment(capacity, directory)?;
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

    /// Play a WAV file (any rate, channels, PCM or float) into the ring.
    #[staticmethod]
    #[pyo3(signature = (path, capacity, realtime, directory=None))]
    fn from_wav(
        path: PathBuf,
        capacity: u64,
        realtime: bool,
        directory: Option<PathBuf>,
    ) -> PyResult<Self> {
        let wav = file::open_wav(&path)
            .map_err(|e| InputError::new_err(format!("{}: {e}", path.display())))?;
        Self::from_frames(Box::new(wav), capacity, realtime, directory)
    }

    /// Play samples already decoded to 16 kHz mono float32 into the ring.
    #[staticmethod]
    #[pyo3(signature = (samples, capacity, realtime, directory=None))]
    fn from_samples(
        samples: PyReadonlyArray1<'_, f32>,
        capacity: u64,
        realtime: bool,
        directory: Option<PathBuf>,
    ) -> PyResult<Self> {
        let samples = samples.as_array().to_vec();
        Self::from_frames(
            Box::new(file::Decoded::new(samples)),
            capacity,
            realtime,
            directory,
        )
    }

    /// Read another process's ring; refuses a foreign or corrupt header.
    #[staticmethod]
    fn attach(path: PathBuf) -> PyResult<Self> {
        let segment =
            Segment::open(&path).map_err(|e| segment_error(format!("{}: {e}", path.display())))?;
        let shared = Shared::new(segment.clone()).map_err(segment_error)?;
        Ok(Self {
            shared,
            consumer: Mutex::new(ring::attach(segment)),
            writer: Mutex::new(Writer::None),
            input: (TARGET_RATE, 1),
            owner: false,
            closed: AtomicBool::new(false),
            view_base: PyOnceLock::new(),
        })
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.shared.segment.path().to_owned()
    }

    #[getter]
    fn capacity(&self) -> u64 {
        self.shared.segment.capacity()
    }

    #[getter]
    fn sample_rate(&self) -> u32 {
        self.shared.segment.sample_rate()
    }

    /// (rate, channels) the source delivers before conversion to 16 kHz mono.
    #[getter]
    fn input_format(&self) -> (u32, u16) {
        self.input
    }

    #[getter]
    fn readable(&self) -> u64 {
        self.shared.segment.readable()
    }

    /// Samples dropped because the reader fell behind by more than the capacity.
    #[getter]
    fn overruns(&self) -> u64 {
        self.shared.segment.overruns()
    }

    /// (rms, peak) of the most recent chunk written.
    #[getter]
    fn level(&self) -> (f32, f32) {
        self.shared.segment.level()
    }

    /// CLOCK_MONOTONIC nanoseconds of the most recent write (time.clock_gettime_ns).
    #[getter]
    fn last_write_ns(&self) -> u64 {
        self.shared.segment.last_write_ns()
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

    /// Append samples (only for a ring created with `Ring(capacity)`); returns how many
    /// fitted, the rest counting as overruns.
    fn write(&self, samples: PyReadonlyArray1<'_, f32>) -> PyResult<usize> {
        self.check_open()?;
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let Writer::Python(producer) = &mut *writer else {
            return Err(PyValueError::new_err(
                "this ring is written by its own source",
            ));
        };
        let samples = samples.as_slice()?;
        let n = producer.write(samples);
        self.shared.wake_reader();
        Ok(n)
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
        if self.owner {
            self.shared.segment.unlink().map_err(segment_error)?;
        }
        Ok(())
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            halt(&self.shared, self.take_writer());
            if self.owner {
                let _ = self.shared.segment.unlink();
            }
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
        Writer::Python(_) | Writer::None => {}
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

/// Remove ring segments whose owning process is gone; returns how many.
#[pyfunction]
#[pyo3(signature = (directory=None))]
fn remove_stale_segments(directory: Option<PathBuf>) -> PyResult<usize> {
    let dir = directory.unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    ring::remove_stale(Path::new(&dir))
        .map_err(|e| segment_error(format!("{}: {e}", dir.display())))
}

#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("SAMPLE_RATE", TARGET_RATE)?;
    m.add("DEFAULT_DIR", DEFAULT_DIR)?;
    m.add("DeviceError", m.py().get_type::<DeviceError>())?;
    m.add("InputError", m.py().get_type::<InputError>())?;
    m.add("SegmentError", m.py().get_type::<SegmentError>())?;
    m.add_class::<Ring>()?;
    m.add_function(wrap_pyfunction!(input_devices, m)?)?;
    m.add_function(wrap_pyfunction!(remove_stale_segments, m)?)?;
    Ok(())
}
