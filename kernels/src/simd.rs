//! What a SIMD instruction set provides to the shared drivers in `gemm/` and
//! `attention.rs`: a register-tiled micro-kernel, the packing routine that
//! feeds it, a small-m dot-product tile, and a few vector loops.
//!
//! All functions are `unsafe`: an implementation may only be called on a CPU
//! with its features (guaranteed by `dispatch::table`), and they take raw
//! pointers whose extents are stated per function.

use crate::operands::{Lhs, Out, Panel, Tile, WeightRows, XRows};

/// How the micro-kernel's accumulators start.
#[derive(Clone, Copy)]
pub(crate) enum Init {
    Zero,
    /// `NR` floats (zero-padded past the valid columns) added to every row.
    Bias(*const f32),
}

pub(crate) trait Simd: Send + Sync + 'static {
    /// Rows of A per micro-tile.
    const MR: usize;
    /// Columns of B per micro-tile (a whole number of vectors).
    const NR: usize;
    /// Query rows per attention task: a multiple of `MR` and of `NR`.
    const QB: usize;
    /// Most x rows per [`Simd::dot_tile`]: beam search's m = 5 rows in one
    /// pass over the weights where the registers allow it.
    const DOT_ROWS: usize = 4;

    /// Packs `rows ≤ NR` rows of a row-major matrix (f16 bits if `f16`, else
    /// f32; rows `ld` elements apart; `k` elements used per row) transposed
    /// into a panel: `dst[p·NR + r] = src[r][p]`, zero for `rows ≤ r < NR`.
    /// `dst` holds `k·NR` floats.
    unsafe fn pack_b(src: *const u8, f16: bool, ld: usize, rows: usize, k: usize, dst: *mut f32);

    /// The micro-kernel: for `r < tile.rows ≤ MR`, `c < tile.cols ≤ NR`,
    /// `C(r, c) = init[c] + Σ_{p<k} A(r, p) · B(p, c)` (see [`Lhs`],
    /// [`Panel`], [`Out`] for where each element lies), one FMA per p in
    /// order (the canonical order: never split k). B must have `NR` readable
    /// floats at every step; only the valid columns of C are written.
    unsafe fn kernel(tile: Tile, k: usize, a: Lhs, b: Panel, c: Out, init: Init);

    /// Dot-product tile for small m: for `r < tile.rows ≤ DOT_ROWS`,
    /// `c < tile.cols ≤ 4`, output `(r, c) = bias[c] + Σ_{p<k} x(r, p) ·
    /// w.rows[c][p]` in the canonical order (16 lanes of FMAs,
    /// `scalar::reduce`, then the bias), where the four weight rows must all
    /// be readable for `k` elements; `bias` may be null.
    unsafe fn dot_tile(tile: Tile, k: usize, x: XRows, w: WeightRows, bias: *const f32, out: Out);

    /// `out[j] = Σ_{p<d} q[p] · k[j·ldk + p]` for `j < n` (k: f16 bits if
    /// `f16`, else f32), in the canonical order of `scalar::dot16`: sixteen
    /// lane sums (p mod 16, FMA chains) folded by halving.
    #[allow(clippy::too_many_arguments)]
    unsafe fn dots(
        q: *const f32,
        k: *const u8,
        f16: bool,
        ldk: usize,
        n: usize,
        d: usize,
        out: *mut f32,
    );
    /// `out[c] = Σ_{j<n} w[j] · v[j·ldv + c]` for `c < d` (v: f16 bits if
    /// `f16`), one FMA chain per column in `j` order.
    #[allow(clippy::too_many_arguments)]
    unsafe fn weighted_sum(
        w: *const f32,
        v: *const u8,
        f16: bool,
        ldv: usize,
        n: usize,
        d: usize,
        out: *mut f32,
    );
    /// [`Simd::dots`] of `nq` queries (`ldq` apart) against the same keys
    /// into rows `ldo` apart, each value exactly as `dots` gives it; a set
    /// may load (and convert) each key once for all queries.
    #[allow(clippy::too_many_arguments)]
    unsafe fn dots_multi(
        q: *const f32,
        ldq: usize,
        nq: usize,
        k: *const u8,
        f16: bool,
        ldk: usize,
        n: usize,
        d: usize,
        out: *mut f32,
        ldo: usize,
    ) {
        for i in 0..nq {
            Self::dots(q.add(i * ldq), k, f16, ldk, n, d, out.add(i * ldo));
        }
    }
    /// [`Simd::weighted_sum`] of `nq` weight rows (`ldw` apart) over the same
    /// values into rows `ldo` apart, each exactly as `weighted_sum` gives it.
    #[allow(clippy::too_many_arguments)]
    unsafe fn weighted_sum_multi(
        w: *const f32,
        ldw: usize,
        nq: usize,
        v: *const u8,
        f16: bool,
        ldv: usize,
        n: usize,
        d: usize,
        out: *mut f32,
        ldo: usize,
    ) {
        for i in 0..nq {
            Self::weighted_sum(w.add(i * ldw), v, f16, ldv, n, d, out.add(i * ldo));
        }
    }
    /// `dst[i] = f32(src[i])` for `i < n`.
    unsafe fn cvt_f16(src: *const u16, n: usize, dst: *mut f32);
    /// `x[i] *= alpha` for `i < n`.
    unsafe fn scale(x: *mut f32, n: usize, alpha: f32);
    /// `x[i] = exp((x[i] − max) · scale)` for `i < n` (max over the same
    /// range; 0 where the argument is below `EXP_MIN`); returns the sum of
    /// the new values in the canonical order of `scalar::sum16`.
    unsafe fn softmax_row(x: *mut f32, n: usize, scale: f32) -> f32;
    /// Column softmax of `s[j·ld + c]`, `j < rows`, `c < cols ≤ ld` (`ld` a
    /// multiple of the vector width): entry (j, c) is visible iff
    /// `j < first_visible + c`. Visible entries become
    /// `exp((s − max_c) · scale)` (0 below `EXP_MIN`), hidden ones 0;
    /// `sums[c]` gets each column's sum, added in row order.
    /// `first_visible ≥ 1`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn softmax_cols(
        s: *mut f32,
        ld: usize,
        rows: usize,
        cols: usize,
        first_visible: usize,
        scale: f32,
        sums: *mut f32,
    );
}

// Constants of the vectorised exp and GELU, shared by every instruction set.
// Published coefficients keep their published digits.
/// The Cephes `expf` minimax polynomial for e^r on |r| ≤ ln2/2:
/// e^r ≈ 1 + r + r²·P(r), P's coefficients highest first.
#[allow(clippy::excessive_precision)]
pub(crate) const EXP_POLY: [f32; 6] = [
    1.987_569_150_0e-4,
    1.398_199_950_7e-3,
    8.333_451_907_3e-3,
    4.166_579_589_4e-2,
    1.666_666_545_9e-1,
    5.000_000_120_1e-1,
];
/// ln 2 split so that n·LN2_HI is exact for |n| < 2⁹ (Cody & Waite).
#[allow(clippy::excessive_precision)] // exact: 355/512
pub(crate) const LN2_HI: f32 = 0.693_359_375;
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
/// exp's input is clamped to this range: e^x stays a normal f32 and 2ⁿ
/// can be built from its exponent bits (−126 ≤ n ≤ 127).
pub(crate) const EXP_MIN: f32 = -87.336_55;
pub(crate) const EXP_MAX: f32 = 88.0;

/// erfc's Chebyshev fit (see `scalar::erfc_nonneg`), highest power first:
/// erfc(z) ≈ t·exp(−z² + Q(t)), t = 1/(1 + z/2).
#[allow(clippy::excessive_precision)]
pub(crate) const ERFC_POLY: [f32; 10] = [
    0.170_872_77,
    -0.822_152_23,
    1.488_515_87,
    -1.135_203_98,
    0.278_868_07,
    -0.186_288_06,
    0.096_784_18,
    0.374_091_96,
    1.000_023_68,
    -1.265_512_23,
];
