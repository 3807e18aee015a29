//! File sources: a WAV file (any rate, channel count and PCM/float format) or samples
//! already decoded by the caller, played into the ring at real time or as fast as the
//! reader takes them.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::feed::{Feed, Shared};
use crate::resample::TARGET_RATE;

/// Frames delivered ~20 ms at a time, like a capture device.
const CHUNK_MS: u32 = 20;

/// Interleaved f32 frames from somewhere.
pub trait Frames: Send {
    fn rate(&self) -> u32;
    fn channels(&self) -> u16;
    /// Fill `buf` with interleaved samples; 0 means the end.
    fn read(&mut self, buf: &mut [f32]) -> Result<usize, String>;
}

pub struct Wav {
    reader: hound::WavReader<BufReader<File>>,
    spec: hound::WavSpec,
    /// A read error met after some samples: those are delivered first, this comes next.
    damage: Option<String>,
}

/// Open a WAV file, checking that its format is one we can convert.
pub fn open_wav(path: &Path) -> Result<Wav, String> {
    let reader =
        hound::WavReader::open(path).map_err(|e| format!("not a readable WAV file: {e}"))?;
    let spec = reader.spec();
    let ok = match spec.sample_format {
        hound::SampleFormat::Float => spec.bits_per_sample == 32,
        hound::SampleFormat::Int => (8..=32).contains(&spec.bits_per_sample),
    };
    if !ok || spec.channels == 0 || spec.sample_rate == 0 {
        return Err(format!(
            "unsupported WAV format: {:?} {} bit, {} channels, {} Hz",
            spec.sample_format, spec.bits_per_sample, spec.channels, spec.sample_rate
        ));
    }
    Ok(Wav {
        reader,
        spec,
        damage: None,
    })
}

impl Frames for Wav {
    fn rate(&self) -> u32 {
        self.spec.sample_rate
    }

    fn channels(&self) -> u16 {
        self.spec.channels
    }

    fn read(&mut self, buf: &mut [f32]) -> Result<usize, String> {
        if let Some(damage) = self.damage.take() {
            return Err(damage);
        }
        let mut n = 0;
        let result: Result<(), hound::Error> = match self.spec.sample_format {
            hound::SampleFormat::Float => {
                // `buf` first: zip must not pull a sample it has no slot for.
                buf.iter_mut()
                    .zip(self.reader.samples::<f32>())
                    .try_for_each(|(slot, s)| {
                        *slot = s?;
                        n += 1;
                        Ok(())
                    })
            }
            hound::SampleFormat::Int => {
                // Full scale of an N-bit integer maps to [-1, 1): 16-bit s becomes s / 32768.
                let scale = 1.0 / (1u64 << (self.spec.bits_per_sample - 1)) as f32;
                buf.iter_mut()
                    .zip(self.reader.samples::<i32>())
                    .try_for_each(|(slot, s)| {
                        *slot = s? as f32 * scale;
                        n += 1;
                        Ok(())
                    })
            }
        };
        match result {
            Ok(()) => Ok(n),
            Err(e) => {
                let damage = format!("WAV data is damaged: {e}");
                if n == 0 {
                    return Err(damage);
                }
                self.damage = Some(damage);
                Ok(n)
            }
        }
    }
}

/// Samples already decoded to 16 kHz mono.
pub struct Decoded {
    samples: Vec<f32>,
    pos: usize,
}

impl Decoded {
    pub fn new(samples: Vec<f32>) -> Self {
        Self { samples, pos: 0 }
    }
}

impl Frames for Decoded {
    fn rate(&self) -> u32 {
        TARGET_RATE
    }

    fn channels(&self) -> u16 {
        1
    }

    fn read(&mut self, buf: &mut [f32]) -> Result<usize, String> {
        let n = buf.len().min(self.samples.len() - self.pos);
        buf[..n].copy_from_slice(&self.samples[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Start the thread that plays `frames` into the ring.
pub fn spawn(
    mut frames: Box<dyn Frames>,
    mut feed: Feed,
    shared: Arc<Shared>,
    realtime: bool,
) -> std::io::Result<JoinHandle<()>> {
    let (rate, channels) = (frames.rate(), usize::from(frames.channels()));
    let chunk_frames = (rate * CHUNK_MS / 1000).max(1) as usize;
    std::thread::Builder::new()
        .name("v2m-file".into())
        .spawn(move || {
            let mut buf = vec![0.0f32; chunk_frames * channels];
            let started = Instant::now();
            let mut played: u64 = 0;
            while !shared.stopping() {
                let n = match frames.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n - n % channels,
                    Err(e) => return shared.fail(e),
                };
                played += (n / channels) as u64;
                if realtime {
                    // Deliver each chunk when a device would have finished recording it.
                    let due =
                        started + Duration::from_nanos(played * 1_000_000_000 / u64::from(rate));
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
                if !feed.push(&buf[..n]) {
                    break;
                }
            }
            feed.finish();
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_frames_come_back_in_order_then_end() {
        let mut d = Decoded::new((0..10).map(|i| i as f32).collect());
        let mut buf = [0.0; 4];
        assert_eq!(d.read(&mut buf).unwrap(), 4);
        assert_eq!(d.read(&mut buf).unwrap(), 4);
        assert_eq!(d.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], &[8.0, 9.0]);
        assert_eq!(d.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn wav_int16_stereo_is_scaled_and_interleaved() {
        let dir = std::env::temp_dir().join(format!("v2m-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for s in [16384i16, -32768, 1, 0] {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        let mut wav = open_wav(&path).unwrap();
        assert_eq!((wav.rate(), wav.channels()), (8000, 2));
        let mut buf = [9.0; 8];
        assert_eq!(wav.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], &[0.5, -1.0, 1.0 / 32768.0, 0.0]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_truncated_wav_delivers_what_it_holds_then_the_error() {
        let path = std::env::temp_dir().join(format!("v2m-trunc-{}.wav", std::process::id()));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for s in 0..100i16 {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 2 * 30 - 1).unwrap();
        let mut wav = open_wav(&path).unwrap();
        let mut buf = [0.0; 64];
        assert_eq!(wav.read(&mut buf).unwrap(), 64);
        assert_eq!(wav.read(&mut buf).unwrap(), 5);
        assert_eq!(buf[4], 68.0 / 32768.0);
        assert!(wav.read(&mut buf).unwrap_err().contains("damaged"));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_file_that_is_not_wav_is_refused() {
        let path = std::env::temp_dir().join(format!("v2m-notwav-{}", std::process::id()));
        std::fs::write(&path, b"hello, not audio").unwrap();
        let err = open_wav(&path).err().unwrap();
        assert!(err.contains("not a readable WAV"), "{err}");
        std::fs::remove_file(&path).unwrap();
    }
}
