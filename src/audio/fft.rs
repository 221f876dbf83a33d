//! A small mixed-radix FFT, enough for Whisper's 400-point frames (400 = 2 · 200, 200 = 4 · 2 · 5 · 5).
//!
//! [`ComplexFft`] is a self-sorting Stockham decimation-in-frequency FFT for any length: radices 4, 2, 3
//! and 5 have hand-written butterflies, any other prime factor falls back to a direct DFT of that size.
//! [`RealFft`] computes the spectrum of a real signal of even length `n` with one complex FFT of
//! length `n/2` (even samples as real parts, odd samples as imaginary parts) and a post-processing pass.
//! Arithmetic is f64: the cost is negligible next to the rest of the front end, and it keeps the
//! transform far more accurate than the f32 reference it is compared against.

use std::f64::consts::PI;

/// A complex number in f64.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Complex {
    pub re: f64,
    pub im: f64,
}

impl Complex {
    #[inline]
    pub fn new(re: f64, im: f64) -> Complex {
        Complex { re, im }
    }
    /// `exp(-2πi · k / n)`, the forward-transform root of unity.
    fn root(k: usize, n: usize) -> Complex {
        let angle = -2.0 * PI * (k % n) as f64 / n as f64;
        Complex::new(angle.cos(), angle.sin())
    }
    #[inline]
    fn add(self, o: Complex) -> Complex {
        Complex::new(self.re + o.re, self.im + o.im)
    }
    #[inline]
    fn sub(self, o: Complex) -> Complex {
        Complex::new(self.re - o.re, self.im - o.im)
    }
    #[inline]
    fn mul(self, o: Complex) -> Complex {
        Complex::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }
    #[inline]
    fn scale(self, s: f64) -> Complex {
        Complex::new(self.re * s, self.im * s)
    }
    /// Multiplies by `-i`.
    #[inline]
    fn mul_neg_i(self) -> Complex {
        Complex::new(self.im, -self.re)
    }
    #[inline]
    fn conj(self) -> Complex {
        Complex::new(self.re, -self.im)
    }
    #[inline]
    pub fn norm_sqr(self) -> f64 {
        self.re * self.re + self.im * self.im
    }
}

/// One Stockham pass: `stride` interleaved sub-transforms of length `radix · m` each become
/// `stride · radix` interleaved sub-transforms of length `m`.
struct Stage {
    radix: usize,
    m: usize,
    stride: usize,
    /// `twiddles[p * (radix - 1) + k - 1] = exp(-2πi · p · k / (radix · m))` for p < m, 1 ≤ k < radix.
    twiddles: Vec<Complex>,
    /// `exp(-2πi · j / radix)` for j < radix (used by the generic butterfly only).
    roots: Vec<Complex>,
}

/// Forward complex FFT of a fixed length (unnormalised: `X[k] = Σ x[j] · exp(-2πi·jk/n)`).
pub(crate) struct ComplexFft {
    n: usize,
    stages: Vec<Stage>,
}

/// Splits `n` into radices, 4s first, then 2, 3, 5 and any remaining primes.
fn factorize(mut n: usize) -> Vec<usize> {
    let mut factors = Vec::new();
    while n.is_multiple_of(4) {
        factors.push(4);
        n /= 4;
    }
    let mut p = 2;
    while n > 1 {
        if p * p > n {
            factors.push(n);
            break;
        }
        while n.is_multiple_of(p) {
            factors.push(p);
            n /= p;
        }
        p += 1;
    }
    factors
}

impl ComplexFft {
    pub fn new(n: usize) -> ComplexFft {
        let mut stages = Vec::new();
        let mut stride = 1;
        let mut len = n;
        for radix in factorize(n) {
            let m = len / radix;
            let mut twiddles = Vec::with_capacity(m * (radix - 1));
            for p in 0..m {
                for k in 1..radix {
                    twiddles.push(Complex::root(p * k, len));
                }
            }
            let roots = (0..radix).map(|j| Complex::root(j, radix)).collect();
            stages.push(Stage {
                radix,
                m,
                stride,
                twiddles,
                roots,
            });
            stride *= radix;
            len = m;
        }
        ComplexFft { n, stages }
    }

    /// Transforms `data` in place; `scratch` must be as long as `data`.
    pub fn process(&self, data: &mut [Complex], scratch: &mut [Complex]) {
        assert_eq!(data.len(), self.n, "FFT input length");
        assert_eq!(scratch.len(), self.n, "FFT scratch length");
        let mut in_data = true;
        for stage in &self.stages {
            if in_data {
                stage.run(data, scratch);
            } else {
                stage.run(scratch, data);
            }
            in_data = !in_data;
        }
        if !in_data {
            data.copy_from_slice(scratch);
        }
    }
}

impl Stage {
    /// DIF butterfly: for each p < m and q < stride, the `radix` inputs
    /// `x[q + s·(p + j·m)]` give `y[q + s·(radix·p + k)] = w^{pk} · Σ_j x_j · ω_radix^{jk}`.
    fn run(&self, x: &[Complex], y: &mut [Complex]) {
        let (r, m, s) = (self.radix, self.m, self.stride);
        match r {
            2 => {
                for p in 0..m {
                    let w1 = self.twiddles[p];
                    for q in 0..s {
                        let a0 = x[q + s * p];
                        let a1 = x[q + s * (p + m)];
                        let out = q + s * 2 * p;
                        y[out] = a0.add(a1);
                        y[out + s] = a0.sub(a1).mul(w1);
                    }
                }
            }
            3 => {
                // ω3 = -1/2 - i·√3/2.
                let c = -0.5;
                let sn = -(3f64).sqrt() / 2.0;
                for p in 0..m {
                    let w = &self.twiddles[p * 2..p * 2 + 2];
                    for q in 0..s {
                        let a0 = x[q + s * p];
                        let a1 = x[q + s * (p + m)];
                        let a2 = x[q + s * (p + 2 * m)];
                        let t1 = a1.add(a2);
                        let t2 = a1.sub(a2);
                        let base = a0.add(t1.scale(c));
                        // i·sn·t2
                        let rot = Complex::new(-sn * t2.im, sn * t2.re);
                        let out = q + s * 3 * p;
                        y[out] = a0.add(t1);
                        y[out + s] = base.add(rot).mul(w[0]);
                        y[out + 2 * s] = base.sub(rot).mul(w[1]);
                    }
                }
            }
            4 => {
                for p in 0..m {
                    let w = &self.twiddles[p * 3..p * 3 + 3];
                    for q in 0..s {
                        let a0 = x[q + s * p];
                        let a1 = x[q + s * (p + m)];
                        let a2 = x[q + s * (p + 2 * m)];
                        let a3 = x[q + s * (p + 3 * m)];
                        let t0 = a0.add(a2);
                        let t1 = a0.sub(a2);
                        let t2 = a1.add(a3);
                        let t3 = a1.sub(a3).mul_neg_i();
                        let out = q + s * 4 * p;
                        y[out] = t0.add(t2);
                        y[out + s] = t1.add(t3).mul(w[0]);
                        y[out + 2 * s] = t0.sub(t2).mul(w[1]);
                        y[out + 3 * s] = t1.sub(t3).mul(w[2]);
                    }
                }
            }
            5 => {
                // ω5^k = cos(2πk/5) - i·sin(2πk/5).
                let c1 = (2.0 * PI / 5.0).cos();
                let c2 = (4.0 * PI / 5.0).cos();
                let s1 = (2.0 * PI / 5.0).sin();
                let s2 = (4.0 * PI / 5.0).sin();
                for p in 0..m {
                    let w = &self.twiddles[p * 4..p * 4 + 4];
                    for q in 0..s {
                        let a0 = x[q + s * p];
                        let a1 = x[q + s * (p + m)];
                        let a2 = x[q + s * (p + 2 * m)];
                        let a3 = x[q + s * (p + 3 * m)];
                        let a4 = x[q + s * (p + 4 * m)];
                        let b1 = a1.add(a4);
                        let b4 = a1.sub(a4);
                        let b2 = a2.add(a3);
                        let b3 = a2.sub(a3);
                        let r1 = a0.add(b1.scale(c1)).add(b2.scale(c2));
                        let r2 = a0.add(b1.scale(c2)).add(b2.scale(c1));
                        // -i · (s1·b4 + s2·b3) and -i · (s2·b4 - s1·b3)
                        let i1 = b4.scale(s1).add(b3.scale(s2)).mul_neg_i();
                        let i2 = b4.scale(s2).sub(b3.scale(s1)).mul_neg_i();
                        let out = q + s * 5 * p;
                        y[out] = a0.add(b1).add(b2);
                        y[out + s] = r1.add(i1).mul(w[0]);
                        y[out + 2 * s] = r2.add(i2).mul(w[1]);
                        y[out + 3 * s] = r2.sub(i2).mul(w[2]);
                        y[out + 4 * s] = r1.sub(i1).mul(w[3]);
                    }
                }
            }
            _ => {
                let mut a = vec![Complex::default(); r];
                for p in 0..m {
                    for q in 0..s {
                        for (j, aj) in a.iter_mut().enumerate() {
                            *aj = x[q + s * (p + j * m)];
                        }
                        for k in 0..r {
                            let mut acc = Complex::default();
                            for (j, aj) in a.iter().enumerate() {
                                acc = acc.add(aj.mul(self.roots[(j * k) % r]));
                            }
                            if k > 0 {
                                acc = acc.mul(self.twiddles[p * (r - 1) + k - 1]);
                            }
                            y[q + s * (r * p + k)] = acc;
                        }
                    }
                }
            }
        }
    }
}

/// Forward FFT of a real signal of even length `n`, giving the `n/2 + 1` non-negative-frequency bins.
pub(crate) struct RealFft {
    n: usize,
    half: ComplexFft,
    /// `exp(-2πi · k / n)` for k ≤ n/2.
    post: Vec<Complex>,
}

impl RealFft {
    /// `n` must be even and non-zero.
    pub fn new(n: usize) -> RealFft {
        assert!(
            n >= 2 && n.is_multiple_of(2),
            "RealFft needs an even length"
        );
        let half = ComplexFft::new(n / 2);
        let post = (0..=n / 2).map(|k| Complex::root(k, n)).collect();
        RealFft { n, half, post }
    }

    /// `packed[j] = x[2j] + i·x[2j+1]` (length n/2; overwritten); `scratch` length n/2;
    /// `out` receives the n/2 + 1 bins.
    pub fn process_packed(
        &self,
        packed: &mut [Complex],
        scratch: &mut [Complex],
        out: &mut [Complex],
    ) {
        let h = self.n / 2;
        assert_eq!(out.len(), h + 1, "RealFft output length");
        self.half.process(packed, scratch);
        for k in 0..=h {
            let zk = packed[k % h];
            let zc = packed[(h - k) % h].conj();
            // Even part E = (Z[k] + conj Z[h-k]) / 2, odd part O = (Z[k] - conj Z[h-k]) / 2i.
            let even = zk.add(zc).scale(0.5);
            let odd = zk.sub(zc).scale(0.5).mul_neg_i();
            out[k] = even.add(self.post[k].mul(odd));
        }
    }

    /// Convenience wrapper over [`RealFft::process_packed`] for a plain real slice of length n.
    #[cfg(test)]
    pub fn process(&self, x: &[f64]) -> Vec<Complex> {
        assert_eq!(x.len(), self.n);
        let h = self.n / 2;
        let mut packed: Vec<Complex> = (0..h)
            .map(|j| Complex::new(x[2 * j], x[2 * j + 1]))
            .collect();
        let mut scratch = vec![Complex::default(); h];
        let mut out = vec![Complex::default(); h + 1];
        self.process_packed(&mut packed, &mut scratch, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random numbers in [-1, 1).
    fn noise(seed: u64, n: usize) -> Vec<f64> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    fn naive_dft(x: &[Complex]) -> Vec<Complex> {
        let n = x.len();
        (0..n)
            .map(|k| {
                let mut acc = Complex::default();
                for (j, xj) in x.iter().enumerate() {
                    acc = acc.add(xj.mul(Complex::root(j * k % n, n)));
                }
                acc
            })
            .collect()
    }

    fn max_err(a: &[Complex], b: &[Complex]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(p, q)| p.sub(*q).norm_sqr().sqrt())
            .fold(0.0, f64::max)
    }

    #[test]
    fn factorization_covers_whisper_sizes() {
        assert_eq!(factorize(200), vec![4, 2, 5, 5]);
        assert_eq!(factorize(400), vec![4, 4, 5, 5]);
        assert_eq!(factorize(1), Vec::<usize>::new());
        assert_eq!(factorize(7 * 11), vec![7, 11]);
    }

    #[test]
    fn complex_fft_matches_naive_dft() {
        for n in [1, 2, 3, 4, 5, 6, 8, 12, 15, 16, 25, 49, 77, 100, 200, 400] {
            let re = noise(n as u64, n);
            let im = noise(1000 + n as u64, n);
            let x: Vec<Complex> = re
                .iter()
                .zip(&im)
                .map(|(&a, &b)| Complex::new(a, b))
                .collect();
            let want = naive_dft(&x);
            let mut got = x.clone();
            let mut scratch = vec![Complex::default(); n];
            let fft = ComplexFft::new(n);
            fft.process(&mut got, &mut scratch);
            let err = max_err(&got, &want);
            assert!(err < 1e-10 * n as f64, "n = {n}: max error {err}");
        }
    }

    #[test]
    fn real_fft_matches_naive_dft() {
        for n in [2, 4, 10, 16, 50, 400] {
            let x = noise(7 + n as u64, n);
            let cx: Vec<Complex> = x.iter().map(|&v| Complex::new(v, 0.0)).collect();
            let want = naive_dft(&cx);
            let got = RealFft::new(n).process(&x);
            assert_eq!(got.len(), n / 2 + 1);
            let err = max_err(&got, &want[..n / 2 + 1]);
            assert!(err < 1e-10 * n as f64, "n = {n}: max error {err}");
        }
    }
}
