//! Live capture from an ALSA device through cpal.
//!
//! cpal's ALSA host opens only devices it enumerates: ALSA name hints plus `hw:`/`plughw:`
//! of each card, and `default`. A PCM defined in a user's `.asoundrc` is therefore
//! reachable by name only when it has a `hint { show on }` section (see tests/alsa/).
//! The stream object may not leave the thread that built it, so each capture owns a
//! thread that builds it, reports the outcome, and drops it when asked to stop.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{Device, ErrorKind, FromSample, SampleFormat, SizedSample, StreamConfig};

use crate::feed::{Feed, Shared};
use crate::resample::TARGET_RATE;

/// The format a device was opened with, for messages.
pub struct Opened {
    pub rate: u32,
    pub channels: u16,
    pub format: SampleFormat,
}

/// Names of the devices that can capture, `default` first.
pub fn input_devices() -> Result<Vec<String>, String> {
    let host = cpal::default_host();
    let mut names = vec!["default".to_owned()];
    for device in host.devices().map_err(|e| e.to_string())? {
        if !device.supports_input() {
            continue;
        }
        if let Ok(id) = device.id() {
            let name = id.id().to_owned();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

fn find_device(name: &str) -> Result<Device, String> {
    let host = cpal::default_host();
    if name == "default" {
        return host
            .default_input_device()
            .ok_or_else(|| "no default input device".to_owned());
    }
    let id = cpal::DeviceId::new(host.id(), name);
    host.device_by_id(&id).ok_or_else(|| {
        "no such ALSA input device (see `v2mctl devices`; a PCM from an ALSA config \
         needs a `hint { show on }` section to be listed)"
            .to_owned()
    })
}

/// Pick the configuration that needs the least conversion: 16 kHz mono if the device
/// offers it (no resampling, bit-exact), integer 16-bit or float samples preferred.
fn choose_config(device: &Device) -> Result<(StreamConfig, SampleFormat), String> {
    let format_rank = |f: SampleFormat| match f {
        SampleFormat::I16 => 0,
        SampleFormat::F32 => 1,
        SampleFormat::I32 => 2,
        SampleFormat::U8 => 3,
        _ => 9,
    };
    let ranges = device
        .supported_input_configs()
        .map_err(|e| format!("cannot query its formats: {e}"))?;
    let best = ranges
        .filter(|r| format_rank(r.sample_format()) < 9)
        .filter(|r| r.min_sample_rate() <= TARGET_RATE && TARGET_RATE <= r.max_sample_rate())
        .min_by_key(|r| {
            (
                r.channels() != 1,
                r.channels(),
                format_rank(r.sample_format()),
            )
        });
    let chosen = match best {
        Some(range) => range.with_sample_rate(TARGET_RATE),
        None => device
            .default_input_config()
            .map_err(|e| format!("no usable input format: {e}"))?,
    };
    if format_rank(chosen.sample_format()) == 9 {
        return Err(format!(
            "sample format {} is not supported",
            chosen.sample_format()
        ));
    }
    Ok((chosen.config(), chosen.sample_format()))
}

/// Errors after which the stream delivers nothing more.
fn is_fatal(kind: ErrorKind) -> bool {
    !matches!(
        kind,
        ErrorKind::Xrun | ErrorKind::RealtimeDenied | ErrorKind::DeviceChanged
    )
}

pub struct Capture {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Capture {
    /// Open device `name` and start writing into the ring behind `shared`.
    /// `make_feed` builds the feed once the device's rate and channel count are known.
    pub fn start(
        name: &str,
        shared: Arc<Shared>,
        make_feed: impl FnOnce(u32, u16) -> Result<Feed, String> + Send + 'static,
    ) -> Result<(Self, Opened), String> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let name = name.to_owned();
        let thread = std::thread::Builder::new()
            .name("v2m-capture".into())
            .spawn(move || {
                let opened = open(&name, shared.clone(), make_feed);
                let (stream, feed, info) = match opened {
                    Ok(parts) => parts,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(info));
                // Blocks without waking until stop() (or the owner vanished).
                let _ = stop_rx.recv();
                drop(stream);
                feed.lock().unwrap_or_else(|e| e.into_inner()).finish();
            })
            .map_err(|e| format!("cannot start the capture thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(info)) => Ok((
                Self {
                    stop: stop_tx,
                    thread,
                },
                info,
            )),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err("the capture thread died while opening the device".into()),
        }
    }

    /// Stop capturing; everything delivered so far stays in the ring.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

type Parts = (cpal::Stream, Arc<Mutex<Feed>>, Opened);

fn open(
    name: &str,
    shared: Arc<Shared>,
    make_feed: impl FnOnce(u32, u16) -> Result<Feed, String>,
) -> Result<Parts, String> {
    let device = find_device(name)?;
    let (config, format) = choose_config(&device)?;
    let feed = Arc::new(Mutex::new(make_feed(config.sample_rate, config.channels)?));
    let stream = match format {
        SampleFormat::I16 => build::<i16>(&device, &config, &feed, &shared),
        SampleFormat::F32 => build::<f32>(&device, &config, &feed, &shared),
        SampleFormat::I32 => build::<i32>(&device, &config, &feed, &shared),
        SampleFormat::U8 => build::<u8>(&device, &config, &feed, &shared),
        other => return Err(format!("sample format {other} is not supported")),
    }
    .map_err(|e| format!("cannot open it for capture: {e}"))?;
    stream
        .play()
        .map_err(|e| format!("cannot start capturing: {e}"))?;
    let info = Opened {
        rate: config.sample_rate,
        channels: config.channels,
        format,
    };
    Ok((stream, feed, info))
}

fn build<T>(
    device: &Device,
    config: &StreamConfig,
    feed: &Arc<Mutex<Feed>>,
    shared: &Arc<Shared>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let feed = feed.clone();
    let failed = shared.clone();
    let mut converted: Vec<f32> = Vec::new();
    device.build_input_stream::<T, _, _>(
        *config,
        move |data: &[T], _| {
            converted.clear();
            converted.extend(data.iter().map(|&s| s.to_sample::<f32>()));
            // Uncontended: only stop() takes this lock, after the stream is gone.
            feed.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(&converted);
        },
        move |err: cpal::Error| {
            if is_fatal(err.kind()) {
                failed.fail(format!("capture failed: {err}"));
            }
        },
        None,
    )
}
