//! Several callers transcribing with one shared model at once: wall time for
//! all of them, against the same calls one after another.
//!
//! cargo run --release --example concurrent -- MODEL.sotto AUDIO [CALLERS] [THREADS]
use sotto::{Model, Options};
use std::sync::Arc;
use std::time::Instant;

fn main() -> sotto::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: concurrent MODEL.sotto AUDIO [CALLERS] [THREADS]");
        std::process::exit(2);
    }
    let callers: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(4);
    let threads: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(2);
    let model = Arc::new(Model::load(&args[0])?);
    let audio = Arc::new(sotto::audio::load_audio(args[1].as_ref())?);
    let opts = {
        let mut o = Options::default();
        o.threads = threads;
        o
    };
    // Warm up (page in the weights, start the pool).
    let expected = model.transcribe(&audio, &opts)?.text;

    let t0 = Instant::now();
    for _ in 0..callers {
        assert_eq!(model.transcribe(&audio, &opts)?.text, expected);
    }
    let serial = t0.elapsed().as_secs_f64();

    let t0 = Instant::now();
    let handles: Vec<_> = (0..callers)
        .map(|_| {
            let (m, a, o) = (model.clone(), audio.clone(), opts.clone());
            std::thread::spawn(move || m.transcribe(&a, &o).map(|t| t.text))
        })
        .collect();
    for h in handles {
        let text = h.join().expect("caller panicked")?;
        assert_eq!(text, expected);
    }
    let concurrent = t0.elapsed().as_secs_f64();
    println!(
        "{callers} callers × {threads} threads: one after another {serial:.2} s, at once {concurrent:.2} s (ratio {:.2})",
        concurrent / serial
    );
    Ok(())
}
