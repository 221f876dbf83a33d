//! Decodes WAV / FLAC / MP3 / OGG-Vorbis to 16 kHz mono f32.
//!
//! Symphonia demuxes and decodes; channels are averaged to mono; [`super::resample`] converts the
//! rate. Error handling follows symphonia's contract: `DecodeError` from the decoder means one bad
//! packet (skipped, and counted so that a file of nothing but bad packets is reported), an
//! `IoError` of kind `UnexpectedEof` from the demuxer is the normal end of the stream, and
//! everything else is a failure. Every failure becomes `Error::Audio` naming the file.

use super::resample::resample;
use super::SAMPLE_RATE;
use crate::{Error, Result};
use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Reads any supported audio file, downmixes to mono and resamples to 16 kHz.
pub fn load_audio(path: &Path) -> Result<Vec<f32>> {
    let name = path.display().to_string();
    let fail = |message: String| Error::audio(name.clone(), message);

    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.len() == 0 {
        return Err(fail("file is empty".into()));
    }
    let file = File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;

    let ext = path.extension().and_then(|e| e.to_str());
    finish(decode_mono(Box::new(file), ext).map_err(fail)?, &name)
}

/// Decodes audio held in memory (standard input): any supported container, found
/// by its contents; `name` is how errors call it.
pub fn load_audio_bytes(bytes: Vec<u8>, name: &str) -> Result<Vec<f32>> {
    let fail = |message: String| Error::audio(name.to_string(), message);
    if bytes.is_empty() {
        return Err(fail("no data".into()));
    }
    let source = Box::new(std::io::Cursor::new(bytes));
    finish(decode_mono(source, None).map_err(fail)?, name)
}

fn finish((samples, rate): (Vec<f32>, u32), name: &str) -> Result<Vec<f32>> {
    let fail = |message: String| Error::audio(name.to_string(), message);
    if samples.is_empty() {
        return Err(fail("no audio samples in file".into()));
    }
    if rate == SAMPLE_RATE {
        return Ok(samples);
    }
    resample(&samples, rate, SAMPLE_RATE).map_err(|e| {
        fail(format!(
            "resampling {rate} Hz to {SAMPLE_RATE} Hz failed: {e}"
        ))
    })
}

/// Decodes the first audio track to mono at its own rate. Errors are messages without the path.
fn decode_mono(
    source: Box<dyn symphonia::core::io::MediaSource>,
    ext: Option<&str>,
) -> std::result::Result<(Vec<f32>, u32), String> {
    let stream = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = ext {
        hint.with_extension(ext);
    }
    let format_options = FormatOptions {
        // Trim MP3/AAC encoder delay and padding so the length matches the original signal.
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, stream, &format_options, &MetadataOptions::default())
        .map_err(|e| format!("unsupported or unrecognised audio format ({e})"))?;
    let mut reader = probed.format;

    let track = reader
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or("no audio track in file")?;
    let track_id = track.id;
    let mut rate = track.codec_params.sample_rate;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| format!("unsupported codec ({e})"))?;

    let mut mono: Vec<f32> = Vec::new();
    let mut buffer: Option<SampleBuffer<f32>> = None;
    let mut bad_packets = 0usize;
    let mut good_packets = 0usize;
    loop {
        let packet = match reader.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            // A chained stream (new track parameters) would need a new decoder; what came before
            // is a complete signal, so stop there.
            Err(SymphoniaError::ResetRequired) => break,
            Err(SymphoniaError::DecodeError(e)) => {
                // Malformed container data: the demuxer could not frame a packet. Treat as the end
                // of the usable stream if something was decoded, otherwise as a corrupt file.
                if good_packets > 0 {
                    break;
                }
                return Err(format!("corrupt audio data ({e})"));
            }
            Err(e) => return Err(format!("reading failed: {e}")),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(SymphoniaError::DecodeError(_)) => {
                bad_packets += 1;
                continue;
            }
            Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(format!("decoding failed: {e}")),
        };
        good_packets += 1;
        let spec = *decoded.spec();
        let frames = decoded.frames();
        if frames == 0 {
            continue;
        }
        match rate {
            None => rate = Some(spec.rate),
            Some(r) if r != spec.rate => {
                return Err(format!(
                    "sample rate changes mid-stream ({r} Hz to {} Hz)",
                    spec.rate
                ))
            }
            Some(_) => {}
        }
        let channels = spec.channels.count().max(1);
        // The buffer holds interleaved samples; grow it if this packet has more (frames × channels).
        if buffer
            .as_ref()
            .is_none_or(|b| b.capacity() < frames * channels)
        {
            buffer = Some(SampleBuffer::new(
                decoded.capacity().max(frames) as u64,
                spec,
            ));
        }
        let buf = buffer.as_mut().expect("allocated above");
        buf.copy_interleaved_ref(decoded);
        let scale = 1.0 / channels as f32;
        mono.extend(buf.samples().chunks_exact(channels).map(|frame| {
            let v = frame.iter().sum::<f32>() * scale;
            if v.is_finite() {
                v
            } else {
                0.0
            }
        }));
    }

    if mono.is_empty() && bad_packets > 0 {
        return Err(format!(
            "corrupt audio data: none of {bad_packets} packets could be decoded"
        ));
    }
    let rate = rate.ok_or("sample rate unknown")?;
    if rate == 0 {
        return Err("sample rate is 0 Hz".into());
    }
    Ok((mono, rate))
}
