//! sotto's CPU kernels. The ISA is chosen once ([`Kernels::detect`] or
//! `SOTTO_KERNELS`); callers pass the resulting table down.
//!
//! Conventions: matrices are row-major; a linear layer's weight `w` is `[n × k]`
//! (one row per output, the input dimension contiguous), as stored in `.sotto` files.

pub mod pool;
pub use pool::Pool;

/// A weight matrix borrowed straight from the model file.
#[derive(Clone, Copy, Debug)]
pub enum Weights<'a> {
    F32(&'a [f32]),
    /// Raw IEEE half bits.
    F16(&'a [u16]),
}

/// Shape of a multi-head attention call. Head `h` of a row is the `head_dim`
/// floats starting at `h * head_dim`.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub n_q: usize,
    pub n_kv: usize,
    pub n_head: usize,
    pub head_dim: usize,
    /// Floats between consecutive rows of q / k and v / out.
    pub q_stride: usize,
    pub kv_stride: usize,
    pub out_stride: usize,
    /// `Some(o)`: query `i` sees keys `0..=i + o` (decoder self-attention).
    pub causal_offset: Option<usize>,
}

/// The kernel table for one instruction set.
#[derive(Clone, Debug)]
pub struct Kernels {
    _todo: (),
}

impl Kernels {
    /// The best kernels this CPU supports.
    pub fn detect() -> Kernels {
        unimplemented!()
    }
    /// `SOTTO_KERNELS=scalar|avx2|avx512|...` if set (error if this CPU lacks it), else [`Kernels::detect`].
    pub fn from_env() -> Result<Kernels, String> {
        unimplemented!()
    }
    /// e.g. "x86-avx2-fma", "scalar".
    pub fn name(&self) -> &'static str {
        unimplemented!()
    }
    /// `out[m × n] = x[m × k] · wᵀ + bias`.
    #[allow(clippy::too_many_arguments)]
    pub fn linear(
        &self,
        pool: &Pool,
        x: &[f32],
        m: usize,
        k: usize,
        w: Weights,
        n: usize,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let _ = (pool, x, m, k, w, n, bias, out);
        unimplemented!()
    }
    /// Row-wise layer norm (eps 1e-5) of `x[rows × d]` into `out`.
    pub fn layer_norm(&self, x: &[f32], d: usize, gamma: &[f32], beta: &[f32], out: &mut [f32]) {
        let _ = (x, d, gamma, beta, out);
        unimplemented!()
    }
    /// GELU, erf form, in place.
    pub fn gelu(&self, x: &mut [f32]) {
        let _ = x;
        unimplemented!()
    }
    /// Scaled dot-product attention (scale 1/sqrt(head_dim)) for every head.
    pub fn attention(
        &self,
        pool: &Pool,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        shape: AttentionShape,
        out: &mut [f32],
    ) {
        let _ = (pool, q, k, v, shape, out);
        unimplemented!()
    }
    /// Half bits to f32.
    pub fn f16_to_f32(&self, src: &[u16], dst: &mut [f32]) {
        let _ = (src, dst);
        unimplemented!()
    }
}
