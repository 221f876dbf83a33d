//! GPU device time from timestamp queries (`cargo bench --bench gpu`): one
//! 256×512×512 f32 matmul against twenty in one submission. Twenty equal dispatches
//! should take well over twice one (overheads are not equal, so not exactly 20×);
//! a ratio near 1 means the timestamps do not measure the work. This was an
//! assertion in tests/gpu.rs; it depends on the device's speed, so it is measured
//! here and the test checks only what timing must always satisfy.
//!
//! Needs an adapter with TIMESTAMP_QUERY (software adapters such as lavapipe are
//! allowed); without one it says so and measures nothing.
use sotto::format::ElementType;
use sotto::gpu::{AdapterPolicy, Epilogue, Gpu, GpuWeight, Phase, Recorder, Rows};

const RUNS: usize = 7;

fn main() {
    // `cargo bench` passes --bench; anything else (a test run) measures nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let g = match Gpu::new(AdapterPolicy::AllowSoftware, &Default::default()) {
        Ok(g) => g,
        Err(e) => {
            println!("no GPU adapter ({e}): nothing measured");
            return;
        }
    };
    if !g.enable_timing(true) {
        println!("the adapter has no TIMESTAMP_QUERY: nothing measured");
        return;
    }
    let (m, n, k) = (256, 512, 512);
    let values = |len: usize, seed: u32| -> Vec<f32> {
        (0..len)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32 - 0.5)
            .collect()
    };
    let wb = values(n * k, 1);
    let w = GpuWeight::upload(
        &g,
        "w",
        ElementType::F32,
        n,
        k,
        0,
        bytemuck::cast_slice(&wb),
    )
    .expect("weight upload");
    let x = g.upload_f32("x", &values(m * k, 2));
    let y = g.floats("y", m * n);
    let matmuls = |count: usize| -> u64 {
        let mut rec = Recorder::new(&g);
        rec.set_phase(Phase::Encoder);
        for _ in 0..count {
            rec.linear(
                &w,
                None,
                Rows::new(&x, 0, k),
                m,
                Rows::new(&y, 0, n),
                Epilogue::default(),
            );
        }
        rec.submit();
        let t = g.take_times().expect("timing is on");
        assert!(t.valid(), "implausible timestamps: {t:?}");
        t.encoder_ns
    };
    matmuls(1); // compile the pipeline
    let median = |count: usize| {
        let mut v: Vec<u64> = (0..RUNS).map(|_| matmuls(count)).collect();
        v.sort_unstable();
        v[RUNS / 2]
    };
    let (one, twenty) = (median(1), median(20));
    let ratio = twenty as f64 / one.max(1) as f64;
    println!(
        "{}: one {m}×{n}×{k} matmul {:.3} ms, twenty {:.3} ms (device time, median of {RUNS}): ratio {ratio:.1}{}",
        g.describe(),
        one as f64 / 1e6,
        twenty as f64 / 1e6,
        if ratio > 2.0 { "" } else { "  <- not > 2: the timestamps do not track the work" }
    );
}
