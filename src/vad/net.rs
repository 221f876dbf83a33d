//! Silero VAD v6's forward pass: per 512-sample frame (with the previous frame's
//! last 64 samples in front), a 256-point STFT magnitude done as a convolution with
//! stored basis rows, four 3-tap convolutions with ReLU, one LSTM step (the state
//! carried from frame to frame) and a sigmoid of a 128 → 1 projection.
//!
//! Everything but the LSTM's recurrence is independent per frame, so blocks of frames
//! go through the kernels' f32 `linear` as GEMMs over im2col rows (one row per frame
//! and time step); the recurrence is one 128 → 512 matrix-vector product per frame.
//! Element-wise steps are plain Rust. The kernels follow one canonical operation order
//! on every kernel set, so the probabilities are the same on all of them.

use sotto_kernels::{Kernels, Pool, Weights};

/// Samples per frame at 16 kHz.
pub const FRAME: usize = 512;
/// Samples of the previous frame each frame sees in front of its own.
pub const CONTEXT: usize = 64;
const INPUT: usize = FRAME + CONTEXT;
/// STFT: 256-sample windows every 128 samples over the input reflected by 128 at
/// the right end; of the graph's 5 windows the first (mostly reflection on the
/// left) is discarded, leaving these.
const N_FFT: usize = 256;
const HOP: usize = 128;
const STEPS: usize = 4;
const BINS: usize = N_FFT / 2 + 1;
const HIDDEN: usize = 128;
/// Frames per GEMM block: bounds the scratch memory for any length of audio.
const BLOCK: usize = 256;

/// A 3-tap convolution with padding 1.
struct Conv {
    /// `[out × in·3]`.
    w: Vec<f32>,
    b: Vec<f32>,
    c_in: usize,
    c_out: usize,
    stride: usize,
}

/// Silero VAD v6 weights (16 kHz).
pub struct Silero {
    basis: Vec<f32>,
    convs: Vec<Conv>,
    lstm_w: Vec<f32>,
    lstm_r: Vec<f32>,
    /// Input and recurrent biases summed.
    lstm_b: Vec<f32>,
    out_w: Vec<f32>,
    out_b: f32,
}

/// What carries over from one frame to the next: the LSTM's hidden and cell state
/// and the last 64 samples.
#[derive(Clone, Debug, PartialEq)]
pub struct VadState {
    h: Vec<f32>,
    c: Vec<f32>,
    context: Vec<f32>,
}

impl Default for VadState {
    fn default() -> VadState {
        VadState {
            h: vec![0.0; HIDDEN],
            c: vec![0.0; HIDDEN],
            context: vec![0.0; CONTEXT],
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// im2col of a 3-tap, padding-1 convolution: `x` holds `frames × t_in` rows of `c`
/// channels; each output row (frame, t) gets column `ch·3 + k` = input row
/// `t·stride + k − 1` of the same frame (zero outside), matching `[out, in, 3]` weights.
fn im2col(x: &[f32], frames: usize, t_in: usize, c: usize, stride: usize, cols: &mut Vec<f32>) {
    let t_out = (t_in - 1) / stride + 1;
    cols.clear();
    cols.resize(frames * t_out * c * 3, 0.0);
    for f in 0..frames {
        for t in 0..t_out {
            let row = &mut cols[(f * t_out + t) * c * 3..][..c * 3];
            for k in 0..3 {
                let Some(src) = (t * stride + k).checked_sub(1).filter(|&s| s < t_in) else {
                    continue;
                };
                let x = &x[(f * t_in + src) * c..][..c];
                for (ch, &v) in x.iter().enumerate() {
                    row[ch * 3 + k] = v;
                }
            }
        }
    }
}

impl Silero {
    /// The network from the tensors of [`super::file::TENSORS`], in that order
    /// (shapes already checked).
    pub(crate) fn from_tensors(t: Vec<Vec<f32>>) -> Silero {
        let mut it = t.into_iter();
        let mut next = || it.next().unwrap_or_default();
        let basis = next();
        let mut convs = Vec::new();
        for (c_in, c_out, stride) in [(BINS, 128, 1), (128, 64, 2), (64, 64, 2), (64, 128, 1)] {
            let w = next();
            let b = next();
            convs.push(Conv {
                w,
                b,
                c_in,
                c_out,
                stride,
            });
        }
        let lstm_w = next();
        let lstm_r = next();
        let b = next();
        let lstm_b = (0..4 * HIDDEN).map(|i| b[i] + b[4 * HIDDEN + i]).collect();
        let out_w = next();
        let out_b = next().first().copied().unwrap_or(0.0);
        Silero {
            basis,
            convs,
            lstm_w,
            lstm_r,
            lstm_b,
            out_w,
            out_b,
        }
    }

    /// Speech probabilities of the whole frames in `samples` (16 kHz; a partial
    /// last frame is left for the caller), continuing from `state`, appended to `out`.
    pub fn process(
        &self,
        kernels: &Kernels,
        pool: &Pool,
        state: &mut VadState,
        samples: &[f32],
        out: &mut Vec<f32>,
    ) {
        let mut a = Vec::new();
        let mut b = Vec::new();
        let mut gates = vec![0f32; 4 * HIDDEN];
        for block in samples.chunks(BLOCK * FRAME) {
            let n = block.len() / FRAME;
            if n == 0 {
                break;
            }
            // STFT windows: rows (frame, step) of the frame's input, reflected at its right end.
            a.clear();
            a.resize(n * STEPS * N_FFT, 0.0);
            let mut input = [0f32; INPUT];
            for f in 0..n {
                input[..CONTEXT].copy_from_slice(&state.context);
                input[CONTEXT..].copy_from_slice(&block[f * FRAME..(f + 1) * FRAME]);
                state
                    .context
                    .copy_from_slice(&input[INPUT - CONTEXT..INPUT]);
                for s in 0..STEPS {
                    let row = &mut a[(f * STEPS + s) * N_FFT..][..N_FFT];
                    for (j, r) in row.iter_mut().enumerate() {
                        let i = s * HOP + j;
                        *r = if i < INPUT {
                            input[i]
                        } else {
                            input[2 * (INPUT - 1) - i]
                        };
                    }
                }
            }
            let rows = n * STEPS;
            b.resize(rows * 2 * BINS, 0.0);
            kernels.linear(
                pool,
                &a,
                rows,
                N_FFT,
                Weights::F32(&self.basis),
                2 * BINS,
                None,
                &mut b,
            );
            a.clear();
            a.extend(b.chunks_exact(2 * BINS).flat_map(|r| {
                (0..BINS).map(move |k| (r[k] * r[k] + r[BINS + k] * r[BINS + k]).sqrt())
            }));
            // The encoder's convolutions: 4 → 4 → 2 → 1 → 1 time steps per frame.
            let mut t = STEPS;
            for Conv {
                w,
                b: bias,
                c_in,
                c_out,
                stride,
            } in &self.convs
            {
                im2col(&a, n, t, *c_in, *stride, &mut b);
                t = (t - 1) / stride + 1;
                a.resize(n * t * c_out, 0.0);
                kernels.linear(
                    pool,
                    &b,
                    n * t,
                    c_in * 3,
                    Weights::F32(w),
                    *c_out,
                    Some(bias),
                    &mut a,
                );
                a.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            // The LSTM: the input projection of the whole block, then frame by frame.
            b.resize(n * 4 * HIDDEN, 0.0);
            kernels.linear(
                pool,
                &a,
                n,
                HIDDEN,
                Weights::F32(&self.lstm_w),
                4 * HIDDEN,
                Some(&self.lstm_b),
                &mut b,
            );
            for x in b.chunks_exact(4 * HIDDEN) {
                kernels.linear(
                    pool,
                    &state.h,
                    1,
                    HIDDEN,
                    Weights::F32(&self.lstm_r),
                    4 * HIDDEN,
                    Some(x),
                    &mut gates,
                );
                let (i, rest) = gates.split_at(HIDDEN);
                let (o, rest) = rest.split_at(HIDDEN);
                let (f, g) = rest.split_at(HIDDEN);
                let mut z = self.out_b;
                for k in 0..HIDDEN {
                    let c = sigmoid(f[k]) * state.c[k] + sigmoid(i[k]) * g[k].tanh();
                    let h = sigmoid(o[k]) * c.tanh();
                    state.c[k] = c;
                    state.h[k] = h;
                    z += self.out_w[k] * h.max(0.0);
                }
                out.push(sigmoid(z));
            }
        }
    }
}
