//! Transcript writers: plain text, SRT, WebVTT, JSON (written by hand: the core
//! library takes no JSON dependency), and openai-whisper's TSV, whisper.cpp's LRC and CSV.
use crate::{Segment, Transcript, Word};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Txt,
    Srt,
    Vtt,
    Json,
    /// openai-whisper's: `start`, `end` in integer milliseconds, `text`, tab-separated.
    Tsv,
    /// Lyrics: `[mm:ss.cc]text` per segment.
    Lrc,
    /// `start,end,"text"` in integer milliseconds (RFC 4180 quoting).
    Csv,
}

impl Format {
    /// All formats, in the order their names are listed.
    pub const ALL: [Format; 7] = [
        Format::Txt,
        Format::Srt,
        Format::Vtt,
        Format::Json,
        Format::Tsv,
        Format::Lrc,
        Format::Csv,
    ];

    /// The name, which is also the file extension.
    pub fn ext(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Srt => "srt",
            Format::Vtt => "vtt",
            Format::Json => "json",
            Format::Tsv => "tsv",
            Format::Lrc => "lrc",
            Format::Csv => "csv",
        }
    }

    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.ext() == name)
    }
}

fn millis(seconds: f32) -> u64 {
    (seconds.max(0.0) as f64 * 1000.0).round() as u64
}

fn clock(seconds: f32, decimal: char) -> String {
    let ms = (seconds.max(0.0) as f64 * 1000.0).round() as u64;
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}{decimal}{ms:03}")
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_number(x: f32) -> String {
    if x.is_finite() {
        format!("{:.3}", x)
    } else {
        "null".into()
    }
}

fn json_prob(p: f32) -> String {
    if p.is_finite() {
        format!("{:.4}", p)
    } else {
        "null".into()
    }
}

/// The transcript as a JSON object; `file`, when given, is included.
pub fn to_json(t: &Transcript, file: Option<&str>) -> String {
    let mut out = String::from("{");
    if let Some(f) = file {
        out += &format!("\"file\":{},", json_string(f));
    }
    out += &format!(
        "\"text\":{},\"language\":{},\"segments\":[",
        json_string(&t.text),
        json_string(&t.language)
    );
    for (i, s) in t.segments.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out += &format!(
            "{{\"start\":{},\"end\":{},\"text\":{},\"avg_logprob\":{},\"no_speech_prob\":{},\"temperature\":{},\"compression_ratio\":{}}}",
            json_number(s.start),
            json_number(s.end),
            json_string(s.text.trim()),
            json_number(s.avg_logprob),
            json_number(s.no_speech_prob),
            json_number(s.temperature),
            json_number(s.compression_ratio)
        );
        // Tokens and the probability each had when chosen (null: given, as a prefix).
        out.pop();
        let ids: Vec<String> = s.tokens.iter().map(|t| t.to_string()).collect();
        let probs: Vec<String> = s.token_probs.iter().map(|&p| json_prob(p)).collect();
        out += &format!(
            ",\"tokens\":[{}],\"token_probs\":[{}]",
            ids.join(","),
            probs.join(",")
        );
        // Word timestamps, when they were asked for.
        if !s.words.is_empty() {
            let words: Vec<String> = s
                .words
                .iter()
                .map(|w| {
                    format!(
                        "{{\"word\":{},\"start\":{},\"end\":{},\"probability\":{}}}",
                        json_string(&w.word),
                        json_number(w.start),
                        json_number(w.end),
                        json_prob(w.probability)
                    )
                })
                .collect();
            out += &format!(",\"words\":[{}]", words.join(","));
        }
        out.push('}');
    }
    out += "]}";
    out
}

/// How subtitles are laid out from word timestamps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Layout {
    /// Re-cut segments to at most this many characters (whisper.cpp's
    /// `--max-len`): a segment ends before the word that would make it longer.
    /// A single word longer than this is itself cut into pieces (times shared
    /// out by characters) unless `split_on_word`.
    pub max_len: Option<usize>,
    /// With `max_len`: never cut inside a word.
    pub split_on_word: bool,
    /// SRT/VTT: a cue per word with the word underlined (`<u>…</u>`), as
    /// openai-whisper's `highlight_words`.
    pub highlight_words: bool,
}

/// `w` cut into pieces of at most `max` characters (its leading spaces kept
/// on the first), times shared out by characters.
fn cut_word(w: &Word, max: usize) -> Vec<Word> {
    let body = w.word.trim_start();
    let lead = &w.word[..w.word.len() - body.len()];
    let chars: Vec<char> = body.chars().collect();
    if chars.len() <= max {
        return vec![w.clone()];
    }
    let n = chars.len() as f32;
    let at = |i: usize| w.start + (w.end - w.start) * i as f32 / n;
    chars
        .chunks(max)
        .enumerate()
        .map(|(k, c)| {
            let mut piece = Word {
                word: c.iter().collect(),
                start: at(k * max),
                end: at((k * max + c.len()).min(chars.len())),
                probability: w.probability,
            };
            if k == 0 {
                piece.word.insert_str(0, lead);
            }
            piece
        })
        .collect()
}

/// The transcript with its segments re-cut by `layout.max_len` (segments
/// without words are kept as they are). Re-cut segments carry their words and
/// text; their tokens are left out (a token may straddle a cut).
pub fn relayout(mut t: Transcript, layout: &Layout) -> Transcript {
    let Some(max) = layout.max_len else {
        return t;
    };
    let max = max.max(1);
    let mut out: Vec<Segment> = Vec::new();
    for s in t.segments.drain(..) {
        if s.words.is_empty() {
            out.push(s);
            continue;
        }
        let pieces: Vec<Word> = if layout.split_on_word {
            s.words.clone()
        } else {
            s.words.iter().flat_map(|w| cut_word(w, max)).collect()
        };
        let mut groups: Vec<Vec<Word>> = Vec::new();
        let mut len = 0;
        for w in pieces {
            let text_len = |extra: &str, len: usize| {
                if len == 0 {
                    extra.trim_start().chars().count()
                } else {
                    len + extra.chars().count()
                }
            };
            let grown = text_len(&w.word, len);
            match groups.last_mut() {
                Some(g) if len > 0 && grown <= max => {
                    g.push(w);
                    len = grown;
                }
                _ => {
                    len = text_len(&w.word, 0);
                    groups.push(vec![w]);
                }
            }
        }
        for g in groups {
            let (start, end) = (g[0].start, g[g.len() - 1].end);
            out.push(Segment {
                start,
                end,
                text: g.iter().map(|w| w.word.as_str()).collect(),
                tokens: Vec::new(),
                token_probs: Vec::new(),
                words: g,
                ..s.clone()
            });
        }
    }
    t.segments = out;
    t
}

/// openai-whisper's highlighted cues of one segment: a cue per word with that
/// word underlined, and the plain text over the gaps between words.
fn highlight_cues(s: &Segment, cues: &mut Vec<(f32, f32, String)>) {
    let plain: String = s.words.iter().map(|w| w.word.as_str()).collect();
    let mut last = s.words[0].start;
    for (i, w) in s.words.iter().enumerate() {
        if millis(last) != millis(w.start) {
            cues.push((last, w.start, plain.trim().to_string()));
        }
        let text: String = s
            .words
            .iter()
            .enumerate()
            .map(|(j, x)| {
                if j != i {
                    return x.word.clone();
                }
                let body = x.word.trim_start();
                let lead = &x.word[..x.word.len() - body.len()];
                format!("{lead}<u>{body}</u>")
            })
            .collect();
        cues.push((w.start, w.end, text.trim().to_string()));
        last = w.end;
    }
}

/// Renders `t` in `format` laid out by `layout` (apply [`relayout`] first for
/// `max_len`).
pub fn render_with(t: &Transcript, format: Format, layout: &Layout) -> String {
    if !layout.highlight_words || !matches!(format, Format::Srt | Format::Vtt) {
        return render(t, format);
    }
    let mut cues = Vec::new();
    for s in &t.segments {
        if s.words.is_empty() {
            cues.push((s.start, s.end, s.text.trim().to_string()));
        } else {
            highlight_cues(s, &mut cues);
        }
    }
    let mut out = String::new();
    if format == Format::Vtt {
        out += "WEBVTT\n\n";
    }
    for (i, (start, end, text)) in cues.iter().enumerate() {
        if format == Format::Srt {
            out += &format!(
                "{}\n{} --> {}\n{text}\n\n",
                i + 1,
                clock(*start, ','),
                clock(*end, ',')
            );
        } else {
            out += &format!(
                "{} --> {}\n{text}\n\n",
                clock(*start, '.'),
                clock(*end, '.')
            );
        }
    }
    out
}

/// Renders `t` in `format`.
pub fn render(t: &Transcript, format: Format) -> String {
    match format {
        Format::Txt => format!("{}\n", t.text),
        Format::Json => to_json(t, None) + "\n",
        Format::Srt => {
            let mut out = String::new();
            for (i, s) in t.segments.iter().enumerate() {
                out += &format!(
                    "{}\n{} --> {}\n{}\n\n",
                    i + 1,
                    clock(s.start, ','),
                    clock(s.end, ','),
                    s.text.trim()
                );
            }
            out
        }
        Format::Vtt => {
            let mut out = String::from("WEBVTT\n\n");
            for s in &t.segments {
                out += &format!(
                    "{} --> {}\n{}\n\n",
                    clock(s.start, '.'),
                    clock(s.end, '.'),
                    s.text.trim()
                );
            }
            out
        }
        Format::Tsv => {
            let mut out = String::from("start\tend\ttext\n");
            for s in &t.segments {
                out += &format!(
                    "{}\t{}\t{}\n",
                    millis(s.start),
                    millis(s.end),
                    s.text.trim().replace(['\t', '\n'], " ")
                );
            }
            out
        }
        Format::Lrc => {
            let mut out = String::from("[by:sotto]\n");
            for s in &t.segments {
                let cs = millis(s.start) / 10;
                out += &format!(
                    "[{:02}:{:02}.{:02}]{}\n",
                    cs / 6000,
                    cs / 100 % 60,
                    cs % 100,
                    s.text.trim().replace('\n', " ")
                );
            }
            out
        }
        Format::Csv => {
            let mut out = String::from("start,end,text\n");
            for s in &t.segments {
                out += &format!(
                    "{},{},\"{}\"\n",
                    millis(s.start),
                    millis(s.end),
                    s.text.trim().replace('"', "\"\"").replace('\n', " ")
                );
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timings;

    fn sample() -> Transcript {
        let seg = |start, end, text: &str| Segment {
            start,
            end,
            text: text.into(),
            tokens: vec![],
            avg_logprob: -0.2,
            no_speech_prob: 0.01,
            temperature: 0.0,
            compression_ratio: 1.0,
            token_probs: vec![],
            words: vec![],
        };
        Transcript {
            text: "Hello \"world\"\\ back\nslash. Second.".into(),
            language: "en".into(),
            segments: vec![
                seg(0.0, 3661.5, " Hello \"world\"\\ back\nslash."),
                seg(3661.5, 3662.04, " Second."),
            ],
            timings: Timings::default(),
            window_temperatures: vec![0.0],
        }
    }

    #[test]
    fn srt_and_vtt_timestamps() {
        let srt = render(&sample(), Format::Srt);
        assert!(
            srt.starts_with("1\n00:00:00,000 --> 01:01:01,500\nHello"),
            "{srt}"
        );
        assert!(srt.contains("2\n01:01:01,500 --> 01:01:02,040\nSecond.\n\n"));
        let vtt = render(&sample(), Format::Vtt);
        assert!(
            vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 01:01:01.500\n"),
            "{vtt}"
        );
    }

    #[test]
    fn json_escapes() {
        let j = to_json(&sample(), Some("a\"b.wav"));
        assert!(j.starts_with("{\"file\":\"a\\\"b.wav\",\"text\":\"Hello \\\"world\\\"\\\\ back\\nslash. Second.\""), "{j}");
        assert!(j.contains("\"start\":3661.500,\"end\":3662.040"));
        assert_eq!(json_string("\u{1}é"), "\"\\u0001é\"");
        assert!(
            j.contains("\"compression_ratio\":1.000,\"tokens\":[],\"token_probs\":[]}"),
            "{j}"
        );
    }

    #[test]
    fn tsv_lrc_csv() {
        let tsv = render(&sample(), Format::Tsv);
        assert!(
            tsv.starts_with("start\tend\ttext\n0\t3661500\tHello \"world\"\\ back slash.\n"),
            "{tsv}"
        );
        let lrc = render(&sample(), Format::Lrc);
        assert!(lrc.contains("\n[61:01.50]Second.\n"), "{lrc}");
        let csv = render(&sample(), Format::Csv);
        assert!(
            csv.contains("\n0,3661500,\"Hello \"\"world\"\"\\ back slash.\"\n"),
            "{csv}"
        );
        for f in Format::ALL {
            assert_eq!(Format::from_name(f.ext()), Some(f));
        }
    }
}
