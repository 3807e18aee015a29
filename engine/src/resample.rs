//! Interleaved frames at any rate and channel count to 16 kHz mono, chunk by chunk.
//!
//! Channels are averaged first so only one channel is resampled. Input already at
//! 16 kHz passes through untouched (bit-exact); other rates go through rubato's
//! synchronous FFT resampler, with its start-up delay trimmed so output sample `k`
//! lines up with input time `k / 16000`.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

pub const TARGET_RATE: u32 = 16_000;
/// Input frames per resampler call: ~23 ms at 44.1 kHz, small enough for live capture.
const CHUNK: usize = 1024;

pub struct ToMono16k {
    channels: usize,
    mono: Vec<f32>,
    fft: Option<FftStage>,
}

struct FftStage {
    fft: Fft<f32>,
    rate: u32,
    pending: Vec<f32>,
    buf: Vec<f32>,
    fed: u64,
    emitted: u64,
    delay_left: usize,
}

impl ToMono16k {
    pub fn new(rate: u32, channels: u16) -> Result<Self, String> {
        if rate == 0 || channels == 0 {
            return Err(format!("cannot convert {rate} Hz with {channels} channels"));
        }
        let fft = if rate == TARGET_RATE {
            None
        } else {
            let fft = Fft::<f32>::new(
                rate as usize,
                TARGET_RATE as usize,
                CHUNK,
                1,
                FixedSync::Input,
            )
            .map_err(|e| format!("no resampler from {rate} Hz: {e}"))?;
            Some(FftStage {
                buf: vec![0.0; fft.output_frames_max()],
                delay_left: fft.output_delay(),
                fft,
                rate,
                pending: Vec::with_capacity(2 * CHUNK),
                fed: 0,
                emitted: 0,
            })
        };
        Ok(Self {
            channels: channels.into(),
            mono: Vec::new(),
            fft,
        })
    }

    /// True when the input is already 16 kHz mono and passes through unchanged.
    pub fn is_identity(&self) -> bool {
        self.channels == 1 && self.fft.is_none()
    }

    /// Convert `interleaved` frames and append the 16 kHz mono result to `out`.
    pub fn push(&mut self, interleaved: &[f32], out: &mut Vec<f32>) {
        let mono: &[f32] = if self.channels == 1 {
            interleaved
        } else {
            let scale = 1.0 / self.channels as f32;
            self.mono.clear();
            self.mono.extend(
                interleaved
                    .chunks_exact(self.channels)
                    .map(|frame| frame.iter().sum::<f32>() * scale),
            );
            &self.mono
        };
        match &mut self.fft {
            None => out.extend_from_slice(mono),
            Some(stage) => stage.push(mono, out),
        }
    }

    /// End of input: flush what the resampler still holds, so the output has exactly
    /// `input_frames * 16000 / rate` samples in total.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        if let Some(stage) = &mut self.fft {
            stage.finish(out);
        }
    }
}

impl FftStage {
    fn push(&mut self, mono: &[f32], out: &mut Vec<f32>) {
        self.fed += mono.len() as u64;
        self.pending.extend_from_slice(mono);
        let mut start = 0;
        while self.pending.len() - start >= CHUNK {
            self.run(start, out);
            start += CHUNK;
        }
        self.pending.drain(..start);
    }

    fn finish(&mut self, out: &mut Vec<f32>) {
        let expected = self.fed * u64::from(TARGET_RATE) / u64::from(self.rate);
        while self.emitted < expected {
            // Silence after the end pushes the last real samples through the filter.
            self.pending.resize(CHUNK, 0.0);
            self.run(0, out);
            self.pending.clear();
        }
        // Only the last call can overshoot, and by less than it produced.
        let over = (self.emitted - expected) as usize;
        out.truncate(out.len() - over);
        self.emitted = expected;
    }

    fn run(&mut self, start: usize, out: &mut Vec<f32>) {
        let input = InterleavedSlice::new(&self.pending[start..start + CHUNK], 1, CHUNK)
            .expect("chunk holds CHUNK mono frames");
        let frames = self.buf.len();
        let mut output =
            InterleavedSlice::new_mut(&mut self.buf, 1, frames).expect("buffer sized by rubato");
        let (_, written) = self
            .fft
            .process_into_buffer(&input, &mut output, None)
            .expect("buffers sized to the resampler's needs");
        let skip = self.delay_left.min(written);
        self.delay_left -= skip;
        out.extend_from_slice(&self.buf[skip..written]);
        self.emitted += (written - skip) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dominant_frequency(x: &[f32], rate: f64) -> f64 {
        // Count rising zero crossings over the steady middle part.
        let mid = &x[x.len() / 10..x.len() * 9 / 10];
        let rising: Vec<usize> = (1..mid.len())
            .filter(|&i| mid[i - 1] < 0.0 && mid[i] >= 0.0)
            .collect();
        let (first, last) = (rising[0], *rising.last().unwrap());
        (rising.len() - 1) as f64 * rate / (last - first) as f64
    }

    #[test]
    fn stereo_44k1_sine_becomes_16k_mono_at_the_same_frequency() {
        let (rate, freq, secs) = (44_100u32, 440.0f64, 2.0f64);
        let frames = (f64::from(rate) * secs) as usize;
        let mut interleaved = Vec::with_capacity(frames * 2);
        for i in 0..frames {
            let s = (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32;
            interleaved.extend_from_slice(&[0.5 * s, 0.5 * s]);
        }
        let mut conv = ToMono16k::new(rate, 2).unwrap();
        let mut out = Vec::new();
        // Odd-sized pieces, as a capture callback would deliver them.
        for piece in interleaved.chunks(2 * 441) {
            conv.push(piece, &mut out);
        }
        conv.finish(&mut out);

        assert_eq!(out.len(), 32_000);
        let f = dominant_frequency(&out, 16_000.0);
        assert!((f - freq).abs() < 1.0, "measured {f} Hz");
        let peak = out[1000..31_000].iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!((peak - 0.5).abs() < 0.02, "amplitude {peak}");
        // The trimmed delay keeps the phase: the output starts where the sine starts.
        let expected = (2.0 * std::f64::consts::PI * freq * 4000.0 / 16_000.0).sin() * 0.5;
        assert!((f64::from(out[4000]) - expected).abs() < 0.02);
    }

    #[test]
    fn sixteen_khz_mono_passes_through_bit_exact() {
        let input: Vec<f32> = (0..5000).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut conv = ToMono16k::new(16_000, 1).unwrap();
        let mut out = Vec::new();
        conv.push(&input, &mut out);
        conv.finish(&mut out);
        assert_eq!(out, input);
    }

    #[test]
    fn channels_are_averaged() {
        let mut conv = ToMono16k::new(16_000, 3).unwrap();
        let mut out = Vec::new();
        conv.push(&[0.3, 0.6, 0.0, -1.0, -1.0, -1.0], &mut out);
        assert_eq!(out.len(), 2);
        assert!((out[0] - 0.3).abs() < 1e-6 && (out[1] + 1.0).abs() < 1e-6);
    }

    #[test]
    fn zero_rate_is_refused() {
        assert!(ToMono16k::new(0, 1).is_err());
    }
}
