//! The producer side of a recording: converts what a source delivers, writes it into
//! the ring, signals the reader, and publishes how the source ended.

use std::sync::atomic::{fence, AtomicBool, Ordering};
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
    /// Set by a reader that found the ring empty and is about to sleep on `data`; the
    /// writer signals only then, so a busy stream costs no syscall per chunk.
    reader_waiting: AtomicBool,
    /// The same for a writer that found the ring full and sleeps on `space`.
    writer_waiting: AtomicBool,
    error: Mutex<Option<String>>,
}

impl Shared {
    pub fn new(segment: Arc<Segment>) -> std::io::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            segment,
            data: EventFd::new()?,
            space: EventFd::new()?,
            stop: AtomicBool::new(false),
            reader_waiting: AtomicBool::new(false),
            writer_waiting: AtomicBool::new(false),
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

    /// Reader found nothing: announce the sleep. The caller must look at the ring once
    /// more afterwards; either it sees the new data or the writer sees the flag.
    pub fn reader_sleeping(&self) {
        announce(&self.reader_waiting);
    }

    /// Reader: the second look found samples after all, so it will not sleep; without
    /// this the writer's next chunk would signal a wake-up nobody waits for.
    pub fn reader_awake(&self) {
        self.reader_waiting.store(false, Ordering::SeqCst);
    }

    /// Writer: samples were published; wake the reader if it announced a sleep.
    pub fn wake_reader(&self) {
        if should_wake(&self.reader_waiting) {
            self.data.signal();
        }
    }

    /// Reader: space was freed; wake the writer if it announced a sleep.
    pub fn wake_writer(&self) {
        if should_wake(&self.writer_waiting) {
            self.space.signal();
        }
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.space.signal();
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

fn announce(flag: &AtomicBool) {
    flag.store(true, Ordering::SeqCst);
    // Pairs with the fence in `should_wake` (store-buffering): at least one side sees
    // the other's write, so a wake-up is never lost.
    fence(Ordering::SeqCst);
}

fn should_wake(flag: &AtomicBool) -> bool {
    fence(Ordering::SeqCst);
    flag.load(Ordering::Relaxed) && flag.swap(false, Ordering::SeqCst)
}

/// Converter plus ring writer for one source.
pub struct Feed {
    sink: Sink,
    conv: ToMono16k,
    out: Vec<f32>,
}

/// The ring side of a feed: writes converted samples and wakes the reader.
struct Sink {
    producer: Producer,
    shared: Arc<Shared>,
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
            sink: Sink {
                producer,
                shared,
                wait_for_reader,
            },
            conv: ToMono16k::new(rate, channels)?,
            out: Vec::new(),
        })
    }

    /// Convert and write interleaved frames. Returns false when a stop request
    /// interrupted a wait for space (the rest of the chunk is then discarded).
    pub fn push(&mut self, interleaved: &[f32]) -> bool {
        if self.conv.is_identity() {
            // Already 16 kHz mono: straight into the ring, without a staging copy.
            return self.sink.emit(interleaved);
        }
        self.out.clear();
        self.conv.push(interleaved, &mut self.out);
        self.sink.emit(&self.out)
    }

    /// The source ended: flush the resampler and publish the end.
    pub fn finish(&mut self) {
        self.out.clear();
        self.conv.finish(&mut self.out);
        self.sink.emit(&self.out);
        let seg = self.sink.producer.segment();
        if seg.state() == State::Running {
            seg.set_state(State::Ended);
        }
        self.sink.shared.data.signal();
    }
}

impl Sink {
    fn emit(&mut self, samples: &[f32]) -> bool {
        if samples.is_empty() {
            return true;
        }
        if !self.wait_for_reader {
            self.producer.write(samples);
            self.shared.wake_reader();
            return true;
        }
        let mut done = 0;
        while done < samples.len() {
            let fits = self.producer.fits(samples.len() - done);
            if fits == 0 {
                announce(&self.shared.writer_waiting);
                if self.shared.stopping() {
                    return false;
                }
                if self.producer.fits(1) == 0 {
                    self.shared.space.wait();
                }
                continue;
            }
            // Only what fits: anything more would be counted as dropped.
            done += self.producer.write(&samples[done..done + fits]);
            self.shared.wake_reader();
        }
        true
    }
}
