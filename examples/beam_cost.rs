//! What beam search costs: decoder time per window of beam 5 against greedy,
//! measured interleaved (greedy, beam, greedy, beam, …) so that a loaded
//! machine disturbs both alike, and where the decoder's time goes (the CPU
//! backend's op profiler, summed by kind).
//!
//! cargo run --release --example beam_cost -- MODEL.sotto AUDIO [ROUNDS] [THREADS] [BEAM]
use sotto::{Model, Op, Options};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

fn main() -> sotto::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: beam_cost MODEL.sotto AUDIO [ROUNDS] [THREADS] [BEAM]");
        std::process::exit(2);
    }
    let arg = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (rounds, threads, beam) = (arg(2, 5), arg(3, 2), arg(4, 5));
    let mut model = Model::load(&args[0])?;
    let audio = sotto::audio::load_audio(args[1].as_ref())?;
    let opts = |beam_size: usize| {
        let mut o = Options::default();
        o.threads = threads;
        o.beam_size = beam_size;
        // One attempt per window: the cost of a search, not of fallbacks.
        o.temperatures = vec![0.0];
        o
    };
    let (greedy, search) = (opts(1), opts(beam));
    model.transcribe(&audio, &search)?;
    let mut ratios = Vec::new();
    for _ in 0..rounds {
        let g = model.transcribe(&audio, &greedy)?.timings;
        let b = model.transcribe(&audio, &search)?.timings;
        let per = |t: &sotto::Timings| t.decode_ms / t.windows.max(1) as f64;
        println!(
            "greedy {:.1} ms/window ({} tokens), beam {beam} {:.1} ms/window ({} tokens): {:.2}×",
            per(&g),
            g.decode_tokens,
            per(&b),
            b.decode_tokens,
            per(&b) / per(&g)
        );
        ratios.push(per(&b) / per(&g));
    }
    ratios.sort_by(f64::total_cmp);
    println!("median ratio {:.2}×", ratios[ratios.len() / 2]);

    // Where the decoder's time goes, by operation kind.
    for o in [&greedy, &search] {
        let sums: Arc<Mutex<BTreeMap<String, (f64, usize)>>> = Default::default();
        let s = sums.clone();
        model.set_profiler(Some(Box::new(move |t| {
            if t.encoder {
                return;
            }
            let kind = match t.op {
                Op::Linear { n, .. } if n > 10_000 => "logits".to_string(),
                Op::Linear { .. } => "linear".to_string(),
                Op::Attention { shape, .. } if shape.n_kv == 1500 => {
                    format!("cross-attention n_q={}", shape.n_q)
                }
                Op::Attention { .. } => "self-attention".to_string(),
                Op::LayerNorm { .. } => "layer norm".to_string(),
                Op::Embed { .. } => "embed".to_string(),
                Op::StoreKv { .. } => "store kv".to_string(),
            };
            let mut m = s.lock().unwrap();
            let e = m.entry(kind).or_default();
            e.0 += t.seconds * 1e3;
            e.1 += 1;
        })));
        let tr = model.transcribe(&audio, o)?;
        model.set_profiler(None);
        println!(
            "beam {}: {:.1} ms decoding per window",
            o.beam_size,
            tr.timings.decode_ms / tr.timings.windows.max(1) as f64
        );
        for (k, (ms, n)) in sums.lock().unwrap().iter() {
            let w = tr.timings.windows.max(1) as f64;
            println!("  {k:28} {:8.1} ms/window {:6} calls", ms / w, n);
        }
    }
    Ok(())
}
