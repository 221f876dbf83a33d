//! `sotto stream`: live transcription of standard input (raw s16le PCM or a WAV stream),
//! printing confirmed words as they are confirmed; `--simulate FILE` feeds a file in real time.

use sotto::stream::{Stream, StreamOptions, Update};
use sotto::{Error, Result};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[cfg(feature = "mic")]
#[path = "stream_mic.rs"]
mod mic;

#[derive(clap::Args)]
pub struct StreamArgs {
    #[arg(short, long, default_value = crate::DEFAULT_MODEL)]
    model: String,
    #[arg(short, long, default_value_t = 2)]
    threads: usize,
    /// Standard input is raw signed 16-bit little-endian mono PCM (else a WAV stream)
    #[arg(long)]
    raw: bool,
    /// Sample rate of --raw input
    #[arg(long, default_value_t = 16_000)]
    rate: u32,
    /// Feed this audio file in real time instead of reading standard input
    #[arg(long)]
    simulate: Option<PathBuf>,
    /// Listen to the default input device (a build with feature `mic`) until interrupted
    #[arg(long, conflicts_with = "simulate")]
    mic: bool,
    /// With --simulate: push the file as fast as it is transcribed, every --step exactly
    /// (reproducible; `wall` is then the audio time pushed so far)
    #[arg(long, requires = "simulate")]
    no_wait: bool,
    /// Seconds of new audio between transcriptions
    #[arg(long, default_value_t = 0.4)]
    step: f32,
    /// Seconds of audio between the two hypotheses that must agree to confirm a word (the
    /// newest one at least this much older; at most --step: the previous one)
    #[arg(long, default_value_t = 0.8)]
    agree: f32,
    /// Beam search hypotheses per transcription (1: greedy)
    #[arg(long, default_value_t = 1)]
    beam_size: usize,
    /// One JSON object per confirmed word, with the wall time since the start (`wall`)
    #[arg(long)]
    json: bool,
    /// Find pauses with Silero VAD (`sotto fetch silero-vad`) instead of the energy level
    #[arg(long)]
    vad: bool,
    /// Silero speech probability that counts as speech (with --vad)
    #[arg(long, default_value_t = 0.5, requires = "vad")]
    vad_threshold: f32,
}

/// A stream with the pause detector the arguments ask for.
fn new_stream<'m>(
    model: &'m sotto::Model,
    opts: StreamOptions,
    vad: Option<&(std::sync::Arc<sotto::vad::Silero>, f32)>,
) -> Result<Stream<&'m sotto::Model>> {
    match vad {
        Some((silero, threshold)) => {
            let detector =
                sotto::vad::SileroPause::new(silero.clone(), *model.kernels(), *threshold);
            Stream::with_detector(model, opts, Box::new(detector))
        }
        None => Stream::new(model, opts),
    }
}

/// `wall`: seconds since the start, real or (`--no-wait`) of audio pushed.
fn print(update: &Update, wall: f64, json: bool) -> Result<()> {
    if update.confirmed.is_empty() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    let text = if json {
        update
            .confirmed
            .iter()
            .map(|w| {
                format!(
                    "{}\n",
                    serde_json::json!({"wall": wall, "start": w.start, "end": w.end, "text": w.text})
                )
            })
            .collect::<String>()
    } else {
        let words: Vec<&str> = update.confirmed.iter().map(|w| w.text.as_str()).collect();
        format!(
            "[{:7.2} --> {:7.2}] {}\n",
            update.confirmed[0].start,
            update.confirmed[update.confirmed.len() - 1].end,
            words.join(" ")
        )
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::Invalid(format!("writing the output: {e}")))
}

/// Reads a WAV header from `input`: (rate, channels) of 16-bit PCM; the data follows.
fn wav_header(input: &mut impl Read) -> Result<(u32, u16)> {
    let bad = |m: &str| Error::Invalid(format!("standard input: {m} (use --raw for raw PCM)"));
    let mut head = [0u8; 12];
    input
        .read_exact(&mut head)
        .map_err(|_| bad("no WAV header"))?;
    if &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(bad("not a WAV stream"));
    }
    let mut format = None;
    loop {
        let mut chunk = [0u8; 8];
        input
            .read_exact(&mut chunk)
            .map_err(|_| bad("no data chunk"))?;
        let len = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]) as usize;
        if &chunk[0..4] == b"data" {
            return format.ok_or_else(|| bad("data before the fmt chunk"));
        }
        if len > 1 << 20 {
            return Err(bad("header chunk too large"));
        }
        let mut body = vec![0u8; len + len % 2];
        input
            .read_exact(&mut body)
            .map_err(|_| bad("truncated header"))?;
        if &chunk[0..4] == b"fmt " && len >= 16 {
            let tag = u16::from_le_bytes([body[0], body[1]]);
            let channels = u16::from_le_bytes([body[2], body[3]]);
            let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
            let bits = u16::from_le_bytes([body[14], body[15]]);
            if !(tag == 1 || tag == 0xFFFE) || bits != 16 || channels == 0 || rate == 0 {
                return Err(bad("only 16-bit PCM WAV is streamed"));
            }
            format = Some((rate, channels));
        }
    }
}

pub fn run(args: &StreamArgs) -> Result<()> {
    if args.threads == 0 {
        return Err(Error::Invalid("--threads must be at least 1".into()));
    }
    let model = crate::open_model(&args.model)?;
    let vad = if args.vad {
        Some((crate::silero_vad()?, args.vad_threshold))
    } else {
        None
    };
    let mut opts = StreamOptions::default();
    opts.step = args.step;
    opts.agree = args.agree;
    opts.keep_up = !args.no_wait;
    opts.options.threads = args.threads;
    opts.options.beam_size = args.beam_size;
    let start = Instant::now();

    if args.mic {
        #[cfg(feature = "mic")]
        return mic::run(&model, opts, vad.as_ref(), args.json);
        #[cfg(not(feature = "mic"))]
        return Err(Error::Invalid(
            "--mic: this sotto was built without the `mic` feature \
             (cargo build --release --features mic)"
                .into(),
        ));
    }

    if let Some(path) = &args.simulate {
        // Real time: each 100-ms piece is pushed when its audio would have been heard.
        let audio = sotto::audio::load_audio(path)?;
        let mut stream = new_stream(&model, opts, vad.as_ref())?;
        let mut pushed = 0.0;
        let clock = |pushed: f64| {
            if args.no_wait {
                pushed
            } else {
                start.elapsed().as_secs_f64()
            }
        };
        for (i, piece) in audio.chunks(1_600).enumerate() {
            let due = Duration::from_millis(100 * (i as u64 + 1));
            if !args.no_wait {
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let update = stream.push(piece)?;
            pushed += piece.len() as f64 / 16_000.0;
            print(&update, clock(pushed), args.json)?;
        }
        print(&stream.finish()?, clock(pushed), args.json)?;
        let late = start.elapsed().as_secs_f64() - audio.len() as f64 / 16_000.0;
        let (runs, windows) = stream.transcriptions();
        eprintln!(
            "finished {late:.2} s after the end of the audio ({runs} transcriptions, \
             {windows} windows)"
        );
        return Ok(());
    }

    let mut input = std::io::stdin().lock();
    let (rate, channels) = if args.raw {
        (args.rate, 1)
    } else {
        wav_header(&mut input)?
    };
    opts.rate = rate;
    let mut stream = new_stream(&model, opts, vad.as_ref())?;
    let frame = 2 * channels as usize;
    let mut bytes = vec![0u8; 3_200 * frame];
    let mut carry = Vec::new();
    loop {
        let n = match input.read(&mut bytes) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Invalid(format!("reading standard input: {e}"))),
        };
        carry.extend_from_slice(&bytes[..n]);
        let whole = carry.len() / frame * frame;
        let pcm: Vec<f32> = carry[..whole]
            .chunks_exact(frame)
            .map(|f| {
                f.chunks_exact(2)
                    .map(|s| i16::from_le_bytes([s[0], s[1]]) as f32 / 32768.0)
                    .sum::<f32>()
                    / channels as f32
            })
            .collect();
        carry.drain(..whole);
        print(
            &stream.push(&pcm)?,
            start.elapsed().as_secs_f64(),
            args.json,
        )?;
    }
    print(&stream.finish()?, start.elapsed().as_secs_f64(), args.json)
}
