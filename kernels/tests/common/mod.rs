//! Shared test helpers: a deterministic generator (no dependencies) and the
//! list of kernel sets this CPU can run.

#![allow(dead_code)]

use sotto_kernels::Kernels;

/// SplitMix64: deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.unit() * scale).collect()
    }
}

/// Every SIMD kernel set this CPU supports (the scalar reference excluded).
pub fn simd_kernels() -> Vec<Kernels> {
    Kernels::available()
        .into_iter()
        .filter(|k| k.name() != "scalar")
        .collect()
}

pub fn scalar() -> Kernels {
    Kernels::with_isa("scalar").unwrap()
}

/// f32 unit roundoff.
pub const U: f64 = f32::EPSILON as f64 / 2.0;

/// f32 → nearest f16 bits (round to nearest even), for building test weights.
pub fn f32_to_f16_bits(v: f32) -> u16 {
    let bits = v.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let a = v.abs();
    if a.is_nan() {
        return sign | 0x7e00;
    }
    if a >= 65520.0 {
        return sign | 0x7c00;
    }
    if a < 6.103_515_6e-5 {
        // Subnormal half: multiples of 2⁻²⁴.
        let m = (a as f64 * 16_777_216.0).round_ties_even() as u16;
        return sign | m;
    }
    let e = ((a.to_bits() >> 23) as i32) - 127;
    let scale = 2f64.powi(e - 10);
    let m = ((a as f64 / scale).round_ties_even()) as u32; // 1024..=2048
    let (e, m) = if m == 2048 { (e + 1, 1024) } else { (e, m) };
    sign | (((e + 15) as u16) << 10) | (m as u16 & 0x3ff)
}

/// The kernel set `name` if this CPU (and OS) can run it. Otherwise: a
/// failure if `SOTTO_KERNELS_ENSURE` lists it (CI says the runner has it),
/// else `None` after printing why the caller's test is skipped.
pub fn kernels_or_skip(name: &str) -> Option<Kernels> {
    match Kernels::from_name(name) {
        Ok(k) => Some(k),
        Err(reason) => {
            let ensured = std::env::var("SOTTO_KERNELS_ENSURE")
                .is_ok_and(|l| l.split(',').any(|w| w.trim() == name));
            assert!(!ensured, "SOTTO_KERNELS_ENSURE lists {name}, but {reason}");
            eprintln!("SKIPPED: the {name} kernel set is not usable here: {reason}");
            None
        }
    }
}
