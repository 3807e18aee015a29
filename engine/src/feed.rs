//! The producer side of a recording: converts what a source delivers, writes it into
//! the ring, signals the reader, and publishes how the source ended.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::notify::EventFd;
use crate::resample::ToMono16k;
use crate::ring::{Producer, Segment, State};

/// What the producer thread and the reader share besides the ring itself.
pub struct Shared {
    pub segment: Arc<Segment>,
    /// Readable when samples arrived or the source ended.
    pub data: EventFd,
    /// Signalled when the reader freed space or asked the source to stop.
    pub space: EventFd,
    pub stop: AtomicBool,
    error: Mutex<Option<String>>,
}

impl Shared {
    pub fn new(segment: Arc<Segment>) -> std::io::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            segment,
            data: EventFd::new()?,
            space: EventFd::new()?,
            stop: AtomicBool::new(false),
            error: Mutex::new(None),
        }))
    }

    pub fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The source broke: keep what was captured, record why, wake the reader.
    pub fn fail(&self, message: String) {
        self.error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(message);
        self.segment.set_state(State::Failed);
        self.data.signal();
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.space.signal();
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// Converter plus ring writer for one source.
pub struct Feed {
    producer: Producer,
    shared: Arc<Shared>,
    conv: ToMono16k,
    out: Vec<f32>,
    wait_for_reader: bool,
}

impl Feed {
    /// `wait_for_reader`: a source read as fast as possible waits for free space instead
    /// of dropping samples; a live source never waits (the device would overrun instead).
    pub fn new(
        producer: Producer,
        shared: Arc<Shared>,
        rate: u32,
        channels: u16,
        wait_for_reader: bool,
    ) -> Result<Self, String> {
        Ok(Self {
            producer,
            shared,
            conv: ToMono16k::new(rate, channels)?,
            out: Vec::new(),
            wait_for_reader,
        })
    }

    /// Convert and write interleaved frames. Returns false when a stop request
    /// interrupted a wait for space (the rest of the chunk is then discarded).
    pub fn push(&mut self, interleaved: &[f32]) -> bool {
        self.out.clear();
        self.conv.push(interleaved, &mut self.out);
        self.emit()
    }

    /// The source ended: flush the resampler and publish the end.
    pub fn finish(&mut self) {
        self.out.clear();
        self.conv.finish(&mut self.out);
        self.emit();
        let seg = self.producer.segment();
        if seg.state() == State::Running {
            seg.set_state(State::Ended);
        }
        self.shared.data.signal();
    }

    fn emit(&mut self) -> bool {
        if !self.wait_for_reader {
            if !self.out.is_empty() {
                self.producer.write(&self.out);
                self.shared.data.signal();
            }
            return true;
        }
        let mut done = 0;
        while done < self.out.len() {
            if self.producer.free() == 0 {
                if self.shared.stopping() {
                    return false;
                }
                self.shared.space.wait();
                continue;
            }
            done += self.producer.write(&self.out[done..]);
            self.shared.data.signal();
        }
        true
    }
}
