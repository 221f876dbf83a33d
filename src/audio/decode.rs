//! Decodes WAV / FLAC / MP3 / OGG-Vorbis to 16 kHz mono f32, packet by packet.
//!
//! Symphonia demuxes and decodes; channels are averaged to mono; [`super::resample`] converts the
//! rate. Error handling follows symphonia's contract: `DecodeError` from the decoder means one bad
//! packet (skipped, and counted so that a file of nothing but bad packets is reported), an
//! `IoError` of kind `UnexpectedEof` from the demuxer is the normal end of the stream, and
//! everything else is a failure. Every failure becomes `Error::Audio` naming the file.

use super::resample::StreamResampler;
use super::SAMPLE_RATE;
use crate::{Error, Result};
use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Reads any supported audio file, downmixes to mono and resamples to 16 kHz.
pub fn load_audio(path: &Path) -> Result<Vec<f32>> {
    let mut reader = AudioReader::open(path)?;
    let mut samples = Vec::new();
    while let Some(chunk) = reader.next_chunk()? {
        samples.extend_from_slice(chunk);
    }
    Ok(samples)
}

/// Decodes audio held in memory (standard input): any supported container, found
/// by its contents; `name` is how errors call it.
pub fn load_audio_bytes(bytes: Vec<u8>, name: &str) -> Result<Vec<f32>> {
    if bytes.is_empty() {
        return Err(Error::audio(name.to_string(), "no data"));
    }
    let source = Box::new(std::io::Cursor::new(bytes));
    let mut reader = AudioReader::from_source(source, None, name.to_string())?;
    let mut samples = Vec::new();
    while let Some(chunk) = reader.next_chunk()? {
        samples.extend_from_slice(chunk);
    }
    Ok(samples)
}

/// An audio file read packet by packet as 16-kHz mono pieces, so that a file of any length
/// is decoded in constant memory. The concatenated pieces are exactly what a whole-file
/// decode and resample gives (the resampler keeps its state between packets).
pub struct AudioReader {
    name: String,
    reader: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track_id: u32,
    rate: Option<u32>,
    resampler: Option<StreamResampler>,
    buffer: Option<SampleBuffer<f32>>,
    mono: Vec<f32>,
    out: Vec<f32>,
    bad_packets: usize,
    good_packets: usize,
    n_mono: u64,
    n_out: u64,
    done: bool,
}

impl AudioReader {
    /// Opens `path` and probes its format; nothing is decoded yet.
    pub fn open(path: &Path) -> Result<AudioReader> {
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
        AudioReader::from_source(Box::new(file), ext, name.clone())
    }

    /// Probes audio from any source (a file, bytes in memory); `ext` hints the
    /// container, `name` is how errors call it.
    pub fn from_source(
        source: Box<dyn symphonia::core::io::MediaSource>,
        ext: Option<&str>,
        name: String,
    ) -> Result<AudioReader> {
        let fail = |message: String| Error::audio(name.clone(), message);
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
            .map_err(|e| fail(format!("unsupported or unrecognised audio format ({e})")))?;
        let reader = probed.format;
        let track = reader
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or_else(|| fail("no audio track in file".into()))?;
        let track_id = track.id;
        let rate = track.codec_params.sample_rate;
        let decoder = symphonia::default::get_codecs()
            .make(&track.codec_params, &DecoderOptions::default())
            .map_err(|e| fail(format!("unsupported codec ({e})")))?;
        Ok(AudioReader {
            name,
            reader,
            decoder,
            track_id,
            rate,
            resampler: None,
            buffer: None,
            mono: Vec::new(),
            out: Vec::new(),
            bad_packets: 0,
            good_packets: 0,
            n_mono: 0,
            n_out: 0,
            done: false,
        })
    }

    /// The next piece of 16-kHz mono audio (possibly empty), or `None` at the end.
    /// An error names the file.
    pub fn next_chunk(&mut self) -> Result<Option<&[f32]>> {
        if self.done {
            return Ok(None);
        }
        let more = self
            .decode_packet()
            .and_then(|more| self.resample(more).map(|()| more))
            .map_err(|m| Error::audio(self.name.clone(), m))?;
        if !more {
            self.done = true;
            if self.n_out == 0 {
                return Err(Error::audio(self.name.clone(), "no audio samples in file"));
            }
        }
        self.n_out += self.out.len() as u64;
        if !more && self.out.is_empty() {
            return Ok(None);
        }
        Ok(Some(&self.out))
    }

    /// Resamples `self.mono` into `self.out`; flushes the resampler when `more` is false.
    fn resample(&mut self, more: bool) -> std::result::Result<(), String> {
        self.out.clear();
        if self.n_mono == 0 && !more {
            return Ok(());
        }
        let rate = self.rate.ok_or("sample rate unknown")?;
        if rate == 0 {
            return Err("sample rate is 0 Hz".into());
        }
        if self.resampler.is_none() {
            self.resampler =
                Some(StreamResampler::new(rate, SAMPLE_RATE).map_err(|e| {
                    format!("resampling {rate} Hz to {SAMPLE_RATE} Hz failed: {e}")
                })?);
        }
        let r = self.resampler.as_mut().expect("created above");
        let err = |e: String| format!("resampling {rate} Hz to {SAMPLE_RATE} Hz failed: {e}");
        r.push(&self.mono, &mut self.out).map_err(err)?;
        if !more {
            r.finish(&mut self.out).map_err(err)?;
        }
        Ok(())
    }

    /// Decodes packets into `self.mono` (mono at the file's rate) until one yields samples;
    /// false at the end of the stream. Errors are messages without the path.
    fn decode_packet(&mut self) -> std::result::Result<bool, String> {
        self.mono.clear();
        loop {
            let packet = match self.reader.next_packet() {
                Ok(packet) => packet,
                Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
                // A chained stream (new track parameters) would need a new decoder; what came
                // before is a complete signal, so stop there.
                Err(SymphoniaError::ResetRequired) => break,
                Err(SymphoniaError::DecodeError(e)) => {
                    // Malformed container data: the demuxer could not frame a packet. Treat as
                    // the end of the usable stream if something was decoded, otherwise as a
                    // corrupt file.
                    if self.good_packets > 0 {
                        break;
                    }
                    return Err(format!("corrupt audio data ({e})"));
                }
                Err(e) => return Err(format!("reading failed: {e}")),
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            let decoded = match self.decoder.decode(&packet) {
                Ok(decoded) => decoded,
                Err(SymphoniaError::DecodeError(_)) => {
                    self.bad_packets += 1;
                    continue;
                }
                Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
                Err(SymphoniaError::ResetRequired) => break,
                Err(e) => return Err(format!("decoding failed: {e}")),
            };
            self.good_packets += 1;
            let spec = *decoded.spec();
            let frames = decoded.frames();
            if frames == 0 {
                continue;
            }
            match self.rate {
                None => self.rate = Some(spec.rate),
                Some(r) if r != spec.rate => {
                    return Err(format!(
                        "sample rate changes mid-stream ({r} Hz to {} Hz)",
                        spec.rate
                    ))
                }
                Some(_) => {}
            }
            let channels = spec.channels.count().max(1);
            // The buffer holds interleaved samples; grow it if this packet has more
            // (frames × channels).
            if self
                .buffer
                .as_ref()
                .is_none_or(|b| b.capacity() < frames * channels)
            {
                self.buffer = Some(SampleBuffer::new(
                    decoded.capacity().max(frames) as u64,
                    spec,
                ));
            }
            let buf = self.buffer.as_mut().expect("allocated above");
            buf.copy_interleaved_ref(decoded);
            let scale = 1.0 / channels as f32;
            self.mono
                .extend(buf.samples().chunks_exact(channels).map(|frame| {
                    let v = frame.iter().sum::<f32>() * scale;
                    if v.is_finite() {
                        v
                    } else {
                        0.0
                    }
                }));
            self.n_mono += self.mono.len() as u64;
            return Ok(true);
        }
        if self.n_mono == 0 && self.bad_packets > 0 {
            return Err(format!(
                "corrupt audio data: none of {} packets could be decoded",
                self.bad_packets
            ));
        }
        Ok(false)
    }
}
