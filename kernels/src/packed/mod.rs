//! `linear` for packed (quantized) weights, shared by every SIMD instruction
//! set: `out[m × n] = x[m × k] · wᵀ + bias` with `w` a [`PackedWeights`].
//! The weights are never dequantized as a whole: each thread decodes only
//! what it is about to use. One file per idea:
//!
//! - this file: what an instruction set provides ([`PackedSimd`]), the
//!   routing, and the weights' per-row parameters;
//! - `gemv.rs`: weight-only layers with m < `CHAIN_MIN_M` (the decoder,
//!   incl. the vocabulary projection): dot tiles decoding in registers;
//! - `gemm/packed.rs`: weight-only layers with m ≥ `CHAIN_MIN_M` (the
//!   encoder): the shared GEMM on decoded panels;
//! - `quant.rs`: quantizing x to int8 for the int8 paths, exactly as
//!   [`quantize_activations`] does (so the codes are identical);
//! - `int8.rs`: int8 × int8 dot tiles (`gemm/int8.rs`: the GEMM);
//! - `lowbit.rs`: 4- / 3-bit × int8 dot tiles (`gemm/lowbit.rs`: the GEMM).
//!
//! Every path computes the reference's operations in the reference's order
//! (`scalar::linear_packed`, `schemes::linear_reference`): weight-only as
//! the float paths (lanes below `CHAIN_MIN_M`, one FMA chain from it on);
//! int8 activations as exact i32 dots rescaled with the reference's float
//! expression, so whether tiles or a GEMM compute them is a speed choice
//! (`tuning::INT8_GEMM_MIN_M`).

pub(crate) mod gemv;
pub(crate) mod int8;
pub(crate) mod lowbit;
pub(crate) mod quant;

use crate::canonical::CHAIN_MIN_M;
use crate::operands::{I8Panel, I8Rows, Out, PackedRows, QuantRows, Tile, XRows};
use crate::schemes::{quantize_activations, ActQuant, PackedWeights, Scheme};
use crate::simd::Simd;
use crate::Pool;

pub(crate) use crate::gemm::lowbit::gemm_lowbit_impl;

/// How a row's codes become values; selects the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// i8 codes, one scale per row (`scales[0]`): `s · code`.
    Int8,
    /// 4-bit codes: `s · (code − z)` per group (Int4Sym: z = 8).
    Affine4,
    /// 4-bit codes: `s · NF4[code]` per group.
    Nf4,
    /// 3-bit codes: `s · (code − z)` per group.
    Affine3,
}

impl Kind {
    pub(crate) fn of(s: Scheme) -> Kind {
        match s {
            Scheme::Int8Row | Scheme::Int8Tensor => Kind::Int8,
            Scheme::Int4Sym | Scheme::Int4Asym => Kind::Affine4,
            Scheme::Nf4 | Scheme::Nf4Dq => Kind::Nf4,
            Scheme::Int3 => Kind::Affine3,
        }
    }
}

/// What an instruction set provides to this driver. Extents are stated per
/// function; all may only be called on a CPU with the ISA's features.
pub(crate) trait PackedSimd: Send + Sync + 'static {
    /// The float micro-kernel and panel packing used for m ≥ `CHAIN_MIN_M`.
    type Float: Simd;
    /// x rows per weight-only dot tile (≤ 4).
    const DOT_ROWS: usize;

    /// `dst[i] = f16(src[2i..2i+2])` for `i < n` (little-endian half bits).
    unsafe fn f16_to_f32(src: *const u8, n: usize, dst: *mut f32);
    /// `cols` rows' `ng` group parameters (`src`: row c's at element
    /// `c·src.stride`) as f32, group-major into a tile `nc` columns wide:
    /// `dst[g·nc + c]` for `g < ng`, `c < nc`, columns from `cols` on
    /// repeating the last row's.
    unsafe fn group_major(
        src: lowbit::ParamRows,
        cols: usize,
        ng: usize,
        nc: usize,
        dst: *mut f32,
    ) {
        lowbit::group_major_rows::<Self>(src, cols, ng, nc, dst)
    }
    /// `dst[i] = min + code[i] · step` for `i < n`, product rounded then the
    /// sum (as `schemes`' Nf4Dq decode).
    unsafe fn dq_absmax(codes: *const u8, n: usize, min: f32, step: f32, dst: *mut f32);
    /// Decodes one row's `kp` values (`kp` = k rounded up to 32) into `dst`:
    /// `codes` is the row in plane 0 (int8: only `k` bytes readable),
    /// `scales` / `zeros` its per-group f32 parameters (`group` elements each;
    /// int8: one scale, `group` = kp). `dst` holds `kp` floats.
    #[allow(clippy::too_many_arguments)]
    unsafe fn decode_row(
        kind: Kind,
        codes: *const u8,
        scales: *const f32,
        zeros: *const f32,
        group: usize,
        k: usize,
        dst: *mut f32,
    );
    /// Weight-only dot tile: for `r < tile.rows ≤ DOT_ROWS`,
    /// `c < tile.cols ≤ 4`, output `(r, c) = bias[c] + Σ_{p<kp} x(r, p) ·
    /// w_c[p]` in the canonical order (`scalar::linear_packed`: 16 lanes of
    /// FMAs over kp, reduced; int8 sums the codes and scales the sum), `w_c`
    /// row `c` of `w` decoded (as `decode_row`). x rows are zero beyond `k`
    /// up to `kp`; `bias` may be null.
    #[allow(clippy::too_many_arguments)]
    unsafe fn dot_tile(
        kind: Kind,
        tile: Tile,
        k: usize,
        group: usize,
        x: XRows,
        w: PackedRows,
        bias: *const f32,
        out: Out,
    );
    /// Exact i32 dots of int8 codes: for `r < rows ≤ 4`, `c < 4`,
    /// `out[r][c] = Σ_{p<k} x(r, p) · w_c[p]`. x codes lie in `−127..=127`
    /// and are zero from `k` to `k` rounded up to 64; `x.sums[r]` is the sum
    /// of row r's codes; weight rows have `k` readable bytes.
    unsafe fn dot_i8(rows: usize, k: usize, x: I8Rows, w: [*const u8; 4], out: &mut [[i32; 4]; 4]);
    /// x rows of [`PackedSimd::dot_i8_wide`]'s tiles: 0 where the set has none
    /// (the [`PackedSimd::dot_i8`] tiles of `I8_ROWS` rows serve).
    const I8_WIDE_ROWS: usize = 0;
    /// [`PackedSimd::dot_i8`] for `rows ≤ I8_WIDE_ROWS` (a batch of decoder
    /// hypotheses in one tile: each weight vector loaded once for all rows).
    unsafe fn dot_i8_wide(
        rows: usize,
        k: usize,
        x: I8Rows,
        w: [*const u8; 4],
        out: &mut [[i32; 4]; 8],
    ) {
        let _ = (rows, k, x, w, out);
        unreachable!("no wide int8 tiles in this set")
    }

    /// Columns (weight rows) per int8 GEMM panel; 0: no int8 GEMM kernel, the
    /// dot tiles serve every m.
    const I8_NR: usize = 0;
    /// x rows per int8 GEMM micro-tile.
    const I8_MR: usize = 0;
    /// Codes per int8 GEMM k step: the panel's k is padded to a multiple of
    /// it (`k4` below). A multiple of 4 dividing 64, so x rows (padded to 64)
    /// cover it.
    const I8_K_STEP: usize = 4;
    /// Int8 GEMM micro-kernel (only called when `I8_NR > 0`): for
    /// `r < tile.rows ≤ I8_MR`, `c < tile.cols ≤ I8_NR`, output `(r, c)` =
    /// `(x.scales[r] · b.scales[c]) · dot(r, c) as f32 + b.bias[c]` (product
    /// rounded, then the sum: the reference's expression), where `dot(r, c) =
    /// Σ_{p<k4} x.codes[r·row_stride + p] · w_c[p]` exactly (wrapping i32),
    /// `k4` = k rounded up to `I8_K_STEP`.
    /// `b.codes` is `[k4/4][I8_NR][4]` bytes of weight codes with the sign
    /// bit flipped (`w + 128` as u8, see `gemm/int8.rs`); x rows hold `k4`
    /// readable codes (zero past k); `x.sums[r]` is row r's code sum;
    /// `b.scales` and `b.bias` hold `I8_NR` floats.
    unsafe fn gemm_i8(tile: Tile, k4: usize, x: QuantRows, b: I8Panel, out: Out) {
        let _ = (tile, k4, x, b, out);
        unreachable!("no int8 GEMM kernel")
    }
    /// Columns per low-bit tile (`NC`, 4 or 16) for `kind` and `group`, and the
    /// order in which the tile wants x's codes ([`quant::XOrder`]).
    fn lowbit_shape(kind: Kind, group: usize) -> (usize, quant::XOrder) {
        let _ = (kind, group);
        (4, quant::XOrder::Element)
    }
    /// Low-bit × int8 tile (4- / 3-bit `kind`, int8 activations): for
    /// `r < tile.rows ≤ 4`, `c < tile.cols ≤ NC`, output `(r, c)` as the reference's
    /// low-bit expression (`schemes::linear_reference`): per group `g`, exact
    /// `d = Σ xq·u` (`u` the integer code: nibble / 3-bit code, or `NF4_I8`),
    /// then `acc = acc + ps[g·NC+c] · (d as f32 − pz[g·NC+c] · xsg[r·ng + g]
    /// as f32)` from 0 over the groups in order, then `sx[r] · acc + bias[c]`.
    /// x rows hold k rounded up to 64 codes (zero past k; in the order
    /// `lowbit_shape` gives); `xsg` are the rows' per-group code sums (`ng`
    /// per row); `ps` / `pz` the columns' group parameters group-major
    /// (`ng·NC`, [`lowbit::tile_params`]), `bias` NC floats; weight rows
    /// `codes + c·rb` for `c < cols` are readable.
    #[allow(clippy::too_many_arguments)]
    unsafe fn dot_lowbit(kind: Kind, tile: Tile, k: usize, group: usize, t: LowbitTile, out: Out) {
        let (rows, cols) = (tile.rows, tile.cols);
        let (out, ldo) = (out.ptr, out.row_stride);
        lowbit::lowbit_scalar(kind, rows, cols, k, group, t, out, ldo)
    }

    /// Columns per low-bit GEMM panel; 0: no low-bit GEMM kernel, the tiles
    /// serve every m.
    const LB_NR: usize = 0;
    /// x rows per low-bit GEMM micro-tile.
    const LB_MR: usize = 0;
    /// Low-bit GEMM micro-kernel (only called when `LB_NR > 0`): for
    /// `r < tile.rows ≤ LB_MR`, `c < tile.cols ≤ LB_NR`, output `(r, c)` as
    /// `dot_lowbit` (the reference's order). `panel` is `[kp/4][LB_NR][4]`
    /// bytes of integer codes `u` (nf4: `NF4_I8 + 128`, and `nf4` says to
    /// take `128·sx_g` off each group dot, or flip the sign bit back; see
    /// `gemm/lowbit.rs`), `kp`
    /// = k rounded up to 32; x rows (natural order) hold `kp` readable codes,
    /// zero past k; `xsg` rows stride `ng`; `ps` / `pz` are `[ng][LB_NR]`,
    /// `bias` `LB_NR` floats.
    unsafe fn gemm_lowbit(
        nf4: bool,
        tile: Tile,
        kp: usize,
        group: usize,
        t: LowbitTile,
        panel: *const u8,
        out: Out,
    ) {
        let _ = (nf4, tile, kp, group, t, panel, out);
        unreachable!("no low-bit GEMM kernel")
    }

    /// Quantizes one x row of `k` floats exactly as [`quantize_activations`]
    /// into `dst` (`k` codes); returns `(s_x, Σ codes)`.
    unsafe fn quantize_row(x: *const f32, k: usize, act: ActQuant, dst: *mut i8) -> (f32, i32) {
        let x = std::slice::from_raw_parts(x, k);
        let q = std::slice::from_raw_parts_mut(dst, k);
        let mut s = [0.0f32];
        quantize_activations(x, k, act, q, &mut s);
        (s[0], q.iter().map(|&v| v as i32).sum())
    }
}

/// The operands of one [`PackedSimd::dot_lowbit`] call (see there).
#[derive(Clone, Copy)]
pub(crate) struct LowbitTile {
    pub xq: *const i8,
    pub ldx: usize,
    pub xsg: *const i32,
    pub sx: *const f32,
    /// The tile's first weight row; row c at `codes + c·rb`.
    pub codes: *const u8,
    pub rb: usize,
    /// Group parameters `(s_g, z_g)` of the tile's columns, group-major:
    /// column c's group g at `g·NC + c` for the tile's width NC, a partial
    /// tile's missing columns repeating its last ([`lowbit::tile_params`]),
    /// so a group's parameters are one contiguous load.
    pub ps: *const f32,
    pub pz: *const f32,
    pub bias: *const f32,
}

impl LowbitTile {
    /// The same tile for x row `r` on (`ng` group sums per x row).
    ///
    /// # Safety
    /// x row `r` exists (its codes, `ng` sums and scale).
    pub(crate) unsafe fn row(self, r: usize, ng: usize) -> LowbitTile {
        LowbitTile {
            xq: self.xq.add(r * self.ldx),
            xsg: self.xsg.add(r * ng),
            sx: self.sx.add(r),
            ..self
        }
    }
}

/// The packed `linear` for instruction set `I`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear<I: PackedSimd>(
    pool: &Pool,
    x: &[f32],
    m: usize,
    k: usize,
    w: PackedWeights,
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    assert!(w.n == n && w.k == k, "linear: packed weight shape mismatch");
    assert!(x.len() >= m * k && out.len() >= m * n);
    if let Some(b) = bias {
        assert!(b.len() >= n);
    }
    let rb = w.row_bytes();
    assert!(w.planes[0].len() >= n * rb, "linear: codes plane too short");
    if m == 0 || n == 0 {
        return;
    }
    let act = w.act;
    if act != ActQuant::Float && w.scheme.is_grouped() {
        lowbit::linear::<I>(pool, x, m, k, &w, act, bias, out)
    } else if act != ActQuant::Float {
        int8::linear::<I>(pool, x, m, k, &w, act, bias, out)
    } else if m < CHAIN_MIN_M {
        gemv::linear::<I>(pool, x, m, k, &w, bias, out)
    } else {
        crate::gemm::packed::linear::<I>(pool, x, m, k, &w, bias, out)
    }
}

/// Little-endian f32 number `i` of `b`.
pub(crate) fn le_f32(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

/// Weight scale of int8 row `r`.
pub(crate) fn int8_scale(w: &PackedWeights, r: usize) -> f32 {
    le_f32(w.planes[1], if w.scheme == Scheme::Int8Row { r } else { 0 })
}

/// Row `r`'s group parameters as f32: `s[..ng]` scales (int8: one), `z[..ng]`
/// zero-points (Int4Sym: 8; unused for NF4 / int8).
pub(crate) fn row_params<I: PackedSimd>(w: &PackedWeights, r: usize, s: &mut [f32], z: &mut [f32]) {
    let ng = w.groups_per_row();
    let (p1, p2) = (w.planes[1], w.planes[2]);
    let g0 = r * ng;
    match w.scheme {
        Scheme::Int8Row | Scheme::Int8Tensor => s[0] = int8_scale(w, r),
        Scheme::Int4Sym | Scheme::Int4Asym | Scheme::Int3 => {
            assert!(p1.len() >= 2 * (g0 + ng));
            // Safety: bounds checked above (and for zeros below).
            unsafe { I::f16_to_f32(p1.as_ptr().add(2 * g0), ng, s.as_mut_ptr()) };
            if w.scheme == Scheme::Int4Sym {
                z[..ng].fill(8.0);
            } else {
                assert!(p2.len() >= 2 * (g0 + ng));
                unsafe { I::f16_to_f32(p2.as_ptr().add(2 * g0), ng, z.as_mut_ptr()) };
            }
        }
        Scheme::Nf4 => {
            for (g, v) in s[..ng].iter_mut().enumerate() {
                *v = le_f32(p1, g0 + g);
            }
        }
        Scheme::Nf4Dq => {
            // Groups g0.. in chunks of 256 (over the whole tensor) sharing min/step.
            let mut g = 0;
            while g < ng {
                let c = (g0 + g) / 256;
                let end = ((c + 1) * 256 - g0).min(ng);
                let (min, step) = (le_f32(p2, 2 * c), le_f32(p2, 2 * c + 1));
                assert!(p1.len() >= g0 + end);
                // Safety: codes g0+g..g0+end are in plane 1 (checked); s holds ng.
                unsafe {
                    I::dq_absmax(
                        p1.as_ptr().add(g0 + g),
                        end - g,
                        min,
                        step,
                        s.as_mut_ptr().add(g),
                    )
                };
                g = end;
            }
        }
    }
}
