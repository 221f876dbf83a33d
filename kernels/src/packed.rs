//! The `linear` driver for packed (quantized) weights, shared by every SIMD
//! instruction set: `out[m × n] = x[m × k] · wᵀ + bias` with `w` a
//! [`PackedWeights`]. The weights are never dequantized as a whole: each
//! thread decodes only what it is about to use.
//!
//! Three paths:
//!
//! * **Weight-only, m ≥ [`DOT_MAX_M`]** (encoder): the f16 GEMM's loop nest
//!   (`gemm.rs`) with one change in step 3: a chunk of weight rows is decoded
//!   row by row into an L1-sized f32 buffer (`decode_row`: nibble / 3-bit
//!   unpacking, table lookup or affine map, per-group scales) and that is
//!   transposed into the micro-kernel's panels. The micro-kernel is the f16
//!   path's, so every scheme runs at nearly the f16 GEMM's speed.
//! * **Weight-only, m < [`DOT_MAX_M`]** (decoder, incl. the vocabulary
//!   projection): tiles of up to `DOT_ROWS` x rows × 4 weight rows; each
//!   weight byte is read once and decoded in registers, then multiplied into
//!   every x row of the tile. x is first copied into rows zero-padded to a
//!   whole number of 32-element blocks, so the kernels need no masked loads of
//!   x (padding codes decode to finite values times 0).
//! * **Int8 × int8** (`ActQuant::Dynamic` / `Static`): x rows are quantized
//!   exactly as [`quantize_activations`] does (so the codes are identical),
//!   then tiles of x rows × 4 weight rows accumulate exact i32
//!   dot products (VNNI `vpdpbusd`, or AVX2 `vpmaddubsw` + `vpmaddwd`), and
//!   the result is rescaled with the reference's formula, so outputs match it
//!   bit for bit. Where the kernel set has an int8 GEMM micro-kernel
//!   (`I8_NR > 0`: AVX2, AVX2 VNNI, AVX-512 VNNI) and m ≥ [`DOT_MAX_M`], the
//!   tiles give way to `gemm_int8`: `linear_gemm`'s loop nest over weight chunks repacked as
//!   `[k/4][I8_NR][4]` bytes (sign bit flipped, so `vpdpbusd` sees them
//!   unsigned), an `I8_MR × I8_NR` i32 tile in registers, and the same rescale
//!   vectorised (product, product, sum: no FMA). x rows are quantized by the
//!   kernel set's `quantize_row`, bit-identical to the reference's function.
//!
//! * **Low-bit × int8** (4- / 3-bit weights with `Dynamic` / `Static`): x
//!   rows quantized as above, their per-group code sums taken once (and, for
//!   ISAs that ask, codes permuted within each 64 to the order their unpack
//!   yields), then `dot_lowbit` tiles of x rows × NC weight rows (NC = 4, or
//!   16 on VNNI): codes unpacked in registers, exact i32 group dots, the
//!   float part in the reference's order, so outputs are bit identical to
//!   `linear_reference`. The group parameters of a block of weight rows are
//!   converted once (f16 → f32 in one call, nf4's `/127`) and the tiles
//!   gather them. For m ≥ `DOT_MAX_M` a set with a low-bit GEMM (`LB_NR > 0`:
//!   every SIMD set — AVX-512 VNNI NR = 64; AVX-VNNI, AVX2, AVX-512, NEON
//!   NR = 16) unpacks each weight chunk once into `[kp/4][LB_NR][4]` code
//!   panels for `gemm_lowbit` (`gemm_int8`'s loop nest); the scalar set uses
//!   the tiles, weight rows blocked to stay in cache while every x tile
//!   passes.
//!
//! Per-row scales and zero-points are converted to f32 (f16 → f32, the Nf4Dq
//! second-level decode) into a small per-task buffer just before use.

use crate::gemm::{run_tiled, split, DOT_MAX_M};
use crate::scalar::SharedOut;
use crate::schemes::{quantize_activations, ActQuant, PackedWeights, Scheme};
use crate::simd::{Init, Simd};
use crate::{scratch, Pool};

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
    fn of(s: Scheme) -> Kind {
        match s {
            Scheme::Int8Row | Scheme::Int8Tensor => Kind::Int8,
            Scheme::Int4Sym | Scheme::Int4Asym => Kind::Affine4,
            Scheme::Nf4 | Scheme::Nf4Dq => Kind::Nf4,
            Scheme::Int3 => Kind::Affine3,
        }
    }
}

/// `PackedSimd::LB_MR` and `gemm_lowbit` of a set whose micro-kernel is
/// `kernel::<R>` for each listed row count `R` (1 ..= `LB_MR`): the row-count
/// dispatch every low-bit GEMM shares.
macro_rules! gemm_lowbit_impl {
    ($($kernel:ident)::+; $($r:literal),+) => {
        const LB_MR: usize = [$($r),+].len();
        unsafe fn gemm_lowbit(
            nf4: bool,
            rows: usize,
            cols: usize,
            kp: usize,
            group: usize,
            t: $crate::packed::LowbitTile,
            panel: *const u8,
            out: *mut f32,
            ldo: usize,
        ) {
            use $($kernel)::+ as kernel;
            match rows {
                $($r => kernel::<$r>(nf4, cols, kp, group, t, panel, out, ldo),)+
                _ => unreachable!("low-bit GEMM rows {rows}"),
            }
        }
    };
}
pub(crate) use gemm_lowbit_impl;

/// What an instruction set provides to this driver. Extents are stated per
/// function; all may only be called on a CPU with the ISA's features.
pub(crate) trait PackedSimd: Send + Sync + 'static {
    /// The float micro-kernel and panel packing used for m ≥ `DOT_MAX_M`.
    type Float: Simd;
    /// x rows per weight-only dot tile (≤ 4).
    const DOT_ROWS: usize;

    /// `dst[i] = f16(src[2i..2i+2])` for `i < n` (little-endian half bits).
    unsafe fn f16_to_f32(src: *const u8, n: usize, dst: *mut f32);
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
    /// Weight-only dot tile: for `r < rows ≤ DOT_ROWS`, `c < cols ≤ 4`,
    /// `out[r·ldo + c] = bias[c] + Σ_{p<kp} x[r·ldx + p] · w_c[p]` in the
    /// canonical order (`scalar::linear_packed`: 16 lanes of FMAs over kp,
    /// reduced; int8 sums the codes and scales the sum), `w_c` the
    /// decoded row `c` (as `decode_row`; all four must be readable: repeat a
    /// row for `c ≥ cols`). x rows are zero beyond `k` up to `kp`; `bias` may
    /// be null.
    #[allow(clippy::too_many_arguments)]
    unsafe fn dot_tile(
        kind: Kind,
        rows: usize,
        cols: usize,
        k: usize,
        group: usize,
        x: *const f32,
        ldx: usize,
        codes: [*const u8; 4],
        params: [(*const f32, *const f32); 4],
        bias: *const f32,
        out: *mut f32,
        ldo: usize,
    );
    /// Exact i32 dots of int8 codes: for `r < rows ≤ 4`, `c < 4`,
    /// `out[r][c] = Σ_{p<k} xq[r·ldx + p] · w_c[p]`. x codes lie in
    /// `−127..=127` and are zero from `k` to `k` rounded up to 64; `xsum[r]`
    /// is the sum of row r's codes; weight rows have `k` readable bytes.
    #[allow(clippy::too_many_arguments)]
    unsafe fn dot_i8(
        rows: usize,
        k: usize,
        xq: *const i8,
        ldx: usize,
        xsum: *const i32,
        w: [*const u8; 4],
        out: &mut [[i32; 4]; 4],
    );

    /// Columns (weight rows) per int8 GEMM panel; 0: no int8 GEMM kernel, the
    /// dot tiles serve every m.
    const I8_NR: usize = 0;
    /// x rows per int8 GEMM micro-tile.
    const I8_MR: usize = 0;
    /// Int8 GEMM micro-kernel (only called when `I8_NR > 0`): for
    /// `r < rows ≤ I8_MR`, `c < cols ≤ I8_NR`,
    /// `out[r·ldo + c] = (sx[r] · sw[c]) · dot(r, c) as f32 + bias[c]`
    /// (product rounded, then the sum: the reference's expression), where
    /// `dot(r, c) = Σ_{p<k4} xq[r·ldx + p] · w_c[p]` exactly (wrapping i32).
    /// `panel` is `[k4/4][I8_NR][4]` bytes of weight codes with the sign bit
    /// flipped (`w + 128` as u8, see [`pack_i8_panel`]); x rows hold `k4`
    /// readable codes (zero past k); `xsum[r]` is row r's code sum; `sw` and
    /// `bias` hold `I8_NR` floats.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_i8(
        rows: usize,
        cols: usize,
        k4: usize,
        xq: *const i8,
        ldx: usize,
        xsum: *const i32,
        sx: *const f32,
        panel: *const u8,
        sw: *const f32,
        bias: *const f32,
        out: *mut f32,
        ldo: usize,
    ) {
        let _ = (rows, cols, k4, xq, ldx, xsum, sx, panel, sw, bias, out, ldo);
        unreachable!("no int8 GEMM kernel")
    }
    /// Columns per low-bit tile (`NC`, 4 or 16) for `kind` and `group`, and whether the
    /// tile wants x codes permuted within each 64 (see [`permute_x64`]).
    fn lowbit_shape(kind: Kind, group: usize) -> (usize, bool) {
        let _ = (kind, group);
        (4, false)
    }
    /// Low-bit × int8 tile (4- / 3-bit `kind`, int8 activations): for
    /// `r < rows ≤ 4`, `c < cols ≤ NC`, `out[r·ldo + c]` as the reference's
    /// low-bit expression (`schemes::linear_reference`): per group `g`, exact
    /// `d = Σ xq·u` (`u` the integer code: nibble / 3-bit code, or `NF4_I8`),
    /// then `acc = acc + ps[c·ng+g] · (d as f32 − pz[c·ng+g] · xsg[r·ng + g]
    /// as f32)` from 0 over the groups in order, then `sx[r] · acc + bias[c]`.
    /// x rows hold k rounded up to 64 codes (zero past k; permuted if
    /// `lowbit_shape` says so); `xsg` are the rows' per-group code sums (`ng`
    /// per row); `ps` / `pz` the rows' group parameters (`cols·ng`), `bias`
    /// NC floats; weight rows `codes + c·rb` for `c < cols` are readable.
    #[allow(clippy::too_many_arguments)]
    unsafe fn dot_lowbit(
        kind: Kind,
        rows: usize,
        cols: usize,
        k: usize,
        group: usize,
        t: LowbitTile,
        out: *mut f32,
        ldo: usize,
    ) {
        lowbit_scalar(kind, rows, cols, k, group, t, out, ldo)
    }

    /// Columns per low-bit GEMM panel; 0: no low-bit GEMM kernel, the tiles
    /// serve every m.
    const LB_NR: usize = 0;
    /// x rows per low-bit GEMM micro-tile.
    const LB_MR: usize = 0;
    /// Low-bit GEMM micro-kernel (only called when `LB_NR > 0`): for
    /// `r < rows ≤ LB_MR`, `c < cols ≤ LB_NR`, `out[r·ldo + c]` as
    /// `dot_lowbit` (the reference's order). `panel` is `[kp/4][LB_NR][4]`
    /// bytes of integer codes `u` (nf4: `NF4_I8 + 128`, and `nf4` says to
    /// take `128·sx_g` off each group dot, or flip the sign bit back; see
    /// [`pack_lowbit_panel`]), `kp`
    /// = k rounded up to 32; x rows (natural order) hold `kp` readable codes,
    /// zero past k; `xsg` rows stride `ng`; `ps` / `pz` are `[ng][LB_NR]`,
    /// `bias` `LB_NR` floats.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_lowbit(
        nf4: bool,
        rows: usize,
        cols: usize,
        kp: usize,
        group: usize,
        t: LowbitTile,
        panel: *const u8,
        out: *mut f32,
        ldo: usize,
    ) {
        let _ = (nf4, rows, cols, kp, group, t, panel, out, ldo);
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
    /// Group parameters `(s_g, z_g)` of the tile's rows, row-major: column
    /// c's group g at `c·ng + g` (`c < cols`).
    pub ps: *const f32,
    pub pz: *const f32,
    pub bias: *const f32,
}

/// Packs weight rows `j..j + rows` (`rows ≤ nr`; `codes` at row j, `rb`
/// bytes per row) into a low-bit GEMM panel: `dst[(p·nr + r)·4 + b]` = the
/// integer code of element `4p + b` of row r for `p < kp/4` (nf4:
/// `NF4_I8 + 128`, as unsigned bytes); rows past `rows` repeat the last.
/// Padding elements (past k) hold the stored code 0's value, met by x = 0.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_lowbit_panel(
    kind: Kind,
    codes: &[u8],
    rb: usize,
    rows: usize,
    kp: usize,
    nr: usize,
    row: &mut [u8],
    dst: &mut [u8],
) {
    let row = &mut row[..kp];
    let table: [u8; 16] = std::array::from_fn(|i| (crate::schemes::NF4_I8[i] as u8) ^ 0x80);
    for r in 0..nr {
        let src = &codes[r.min(rows - 1) * rb..][..rb];
        if kind == Kind::Affine3 {
            for (e, o) in row.iter_mut().enumerate() {
                // Safety: e < kp, inside the row's rb = kp/32·12 bytes.
                *o = unsafe { code_at(kind, src.as_ptr(), e) };
            }
        } else {
            for (blk, o) in src.chunks_exact(16).zip(row.chunks_exact_mut(32)) {
                let (lo, hi) = o.split_at_mut(16);
                for ((l, h), &b) in lo.iter_mut().zip(hi.iter_mut()).zip(blk) {
                    *l = b & 15;
                    *h = b >> 4;
                }
            }
            if kind == Kind::Nf4 {
                for o in row.iter_mut() {
                    *o = table[*o as usize];
                }
            }
        }
        for (p, c) in row.chunks_exact(4).enumerate() {
            dst[(p * nr + r) * 4..][..4].copy_from_slice(c);
        }
    }
}

/// Reorders each 64 codes of an x row to `[0..16, 32..48, 16..32, 48..64]`:
/// the order in which a 4-bit tile that loads two blocks' 32 bytes into both
/// 256-bit halves and shifts the upper half by 4 sees the weights.
pub(crate) fn permute_x64(row: &mut [i8]) {
    for c in row.chunks_exact_mut(64) {
        let mut t = [0i8; 64];
        t[..16].copy_from_slice(&c[..16]);
        t[16..32].copy_from_slice(&c[32..48]);
        t[32..48].copy_from_slice(&c[16..32]);
        t[48..].copy_from_slice(&c[48..]);
        c.copy_from_slice(&t);
    }
}

/// Stored code of element `e` of a row (`Kind::Affine3` or a 4-bit kind).
///
/// # Safety
/// `codes` must hold the row's whole blocks.
unsafe fn code_at(kind: Kind, codes: *const u8, e: usize) -> u8 {
    let (b, i) = (e / 32, e % 32);
    if kind == Kind::Affine3 {
        let blk = codes.add(12 * b);
        let low = (*blk.add(i % 8) >> (2 * (i / 8))) & 3;
        let high = (*blk.add(8 + i % 4) >> (i / 4)) & 1;
        low | (high << 2)
    } else {
        (*codes.add(16 * b + i % 16) >> (4 * (i / 16))) & 15
    }
}

/// The portable `dot_lowbit` (the reference's arithmetic on raw pointers).
#[allow(clippy::too_many_arguments)]
unsafe fn lowbit_scalar(
    kind: Kind,
    rows: usize,
    cols: usize,
    k: usize,
    group: usize,
    t: LowbitTile,
    out: *mut f32,
    ldo: usize,
) {
    let ng = k.div_ceil(group);
    for r in 0..rows {
        for c in 0..cols {
            let codes = t.codes.add(c * t.rb);
            let mut acc = 0.0f32;
            for g in 0..ng {
                let (mut d, mut sx) = (0i32, 0i32);
                for e in g * group..((g + 1) * group).min(k) {
                    let x = *t.xq.add(r * t.ldx + e) as i32;
                    let u = code_at(kind, codes, e);
                    let u = if kind == Kind::Nf4 {
                        crate::schemes::NF4_I8[u as usize] as i32
                    } else {
                        u as i32
                    };
                    d += x * u;
                    sx += x;
                }
                debug_assert_eq!(sx, *t.xsg.add(r * ng + g));
                let (s, z) = (*t.ps.add(c * ng + g), *t.pz.add(c * ng + g));
                acc += s * (d as f32 - z * sx as f32);
            }
            *out.add(r * ldo + c) = *t.sx.add(r) * acc + *t.bias.add(c);
        }
    }
}

/// Repacks weight rows `j..j + rows` (`rows ≤ nr`, `k` bytes each, `w` at row
/// `j`) into an int8 GEMM panel: `dst[(p·nr + r)·4 + b] = w[r][4p + b] ^ 0x80`
/// for `p < k4/4` (`k4` = k rounded up to 4); bytes past `k` and rows past
/// `rows` are code 0 (0x80).
fn pack_i8_panel(w: &[u8], rows: usize, k: usize, nr: usize, dst: &mut [u8]) {
    let k4 = k.next_multiple_of(4);
    let dst = &mut dst[..k4 * nr];
    let full = k / 4;
    for r in 0..nr {
        if r >= rows {
            for p in 0..k4 / 4 {
                dst[(p * nr + r) * 4..][..4].fill(0x80);
            }
            continue;
        }
        let row = &w[r * k..(r + 1) * k];
        for (p, c) in row.chunks_exact(4).enumerate() {
            let v = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ 0x8080_8080;
            dst[(p * nr + r) * 4..][..4].copy_from_slice(&v.to_le_bytes());
        }
        if full < k4 / 4 {
            let mut t = [0x80u8; 4];
            for (b, &c) in row[4 * full..].iter().enumerate() {
                t[b] = c ^ 0x80;
            }
            dst[(full * nr + r) * 4..][..4].copy_from_slice(&t);
        }
    }
}

/// Little-endian f32 number `i` of `b`.
fn le_f32(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

/// Weight scale of int8 row `r`.
fn int8_scale(w: &PackedWeights, r: usize) -> f32 {
    le_f32(w.planes[1], if w.scheme == Scheme::Int8Row { r } else { 0 })
}

/// Row `r`'s group parameters as f32: `s[..ng]` scales (int8: one), `z[..ng]`
/// zero-points (Int4Sym: 8; unused for NF4 / int8).
fn row_params<I: PackedSimd>(w: &PackedWeights, r: usize, s: &mut [f32], z: &mut [f32]) {
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

/// Read-only pointer that may cross into pool tasks.
#[derive(Clone, Copy)]
struct SharedIn<T>(*const T);
// Safety: points into borrowed data that outlives every task and is only read.
unsafe impl<T> Send for SharedIn<T> {}
unsafe impl<T> Sync for SharedIn<T> {}
impl<T> SharedIn<T> {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    fn get(self) -> *const T {
        self.0
    }
}

/// Pointer to a buffer whose disjoint parts pool tasks write.
#[derive(Clone, Copy)]
struct SharedMut<T>(*mut T);
// Safety: every user writes disjoint elements; the buffer outlives the job.
unsafe impl<T> Send for SharedMut<T> {}
unsafe impl<T> Sync for SharedMut<T> {}
impl<T> SharedMut<T> {
    fn get(self) -> *mut T {
        self.0
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
        linear_lowbit::<I>(pool, x, m, k, &w, act, bias, out)
    } else if act != ActQuant::Float {
        linear_int8::<I>(pool, x, m, k, &w, act, bias, out)
    } else if m < DOT_MAX_M {
        linear_dot::<I>(pool, x, m, k, &w, bias, out)
    } else {
        linear_gemm::<I>(pool, x, m, k, &w, bias, out)
    }
}

/// Task count for `groups` groups of 4 weight rows: a few per thread for
/// balance, each a long contiguous stretch for the prefetcher.
fn dot_tasks(pool: &Pool, groups: usize) -> usize {
    groups
        .min(pool.threads() * 4)
        .min(groups.div_ceil(8))
        .max(1)
}

fn linear_dot<I: PackedSimd>(
    pool: &Pool,
    x: &[f32],
    m: usize,
    k: usize,
    w: &PackedWeights,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let n = w.n;
    let kind = Kind::of(w.scheme);
    let kp = k.next_multiple_of(32);
    let group = if kind == Kind::Int8 { kp } else { w.group };
    let ng = w.groups_per_row();
    let rb = w.row_bytes();
    // x rows zero-padded to kp.
    let mut xp = vec![0.0f32; m * kp];
    for (dst, src) in xp.chunks_exact_mut(kp).zip(x.chunks_exact(k)) {
        dst[..k].copy_from_slice(src);
    }
    let groups = n.div_ceil(4);
    let tasks = dot_tasks(pool, groups);
    let out = SharedOut(out.as_mut_ptr());
    let bias = SharedIn(bias.map_or(std::ptr::null(), |b| b.as_ptr()));
    let (xp, codes) = (SharedIn(xp.as_ptr()), SharedIn(w.planes[0].as_ptr()));
    let pl = scratch::lines(ng);
    pool.run(tasks, &|t| {
        let (g0, g1) = split(groups, tasks, t);
        scratch::with(8 * pl, |buf| {
            let (s, z) = buf.split_at_mut(4 * pl);
            for g in g0..g1 {
                let j = g * 4;
                let cols = (n - j).min(4);
                for c in 0..cols {
                    row_params::<I>(
                        w,
                        j + c,
                        &mut s[c * pl..(c + 1) * pl],
                        &mut z[c * pl..(c + 1) * pl],
                    );
                }
                let row = |c: usize| if c < cols { c } else { 0 };
                let wc: [*const u8; 4] =
                    std::array::from_fn(|c| codes.get().wrapping_add((j + row(c)) * rb));
                let params: [(*const f32, *const f32); 4] =
                    std::array::from_fn(|c| (s[row(c) * pl..].as_ptr(), z[row(c) * pl..].as_ptr()));
                let b = if bias.get().is_null() {
                    bias.get()
                } else {
                    bias.get().wrapping_add(j)
                };
                for r0 in (0..m).step_by(I::DOT_ROWS) {
                    // Safety: x rows r0.. (padded, kp floats each), weight rows
                    // j..j+cols (rb bytes each, checked by `linear`) and output
                    // columns j..j+cols of this task's rows are in bounds.
                    unsafe {
                        I::dot_tile(
                            kind,
                            (m - r0).min(I::DOT_ROWS),
                            cols,
                            k,
                            group,
                            xp.get().add(r0 * kp),
                            kp,
                            wc,
                            params,
                            b,
                            out.ptr().add(r0 * n + j),
                            n,
                        )
                    }
                }
            }
        })
    });
}

/// Bytes of decoded weights per chunk (the f16 GEMM's `CHUNK_BYTES`).
const CHUNK_BYTES: usize = 384 * 1024;

fn linear_gemm<I: PackedSimd>(
    pool: &Pool,
    x: &[f32],
    m: usize,
    k: usize,
    w: &PackedWeights,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let n = w.n;
    let (mr, nr) = (I::Float::MR, I::Float::NR);
    let kind = Kind::of(w.scheme);
    let kp = k.next_multiple_of(32);
    let group = if kind == Kind::Int8 { kp } else { w.group };
    let ng = w.groups_per_row();
    let rb = w.row_bytes();
    let panels = n.div_ceil(nr);
    let chunk_panels = (CHUNK_BYTES / (k * nr * 4)).clamp(1, panels);
    let out = SharedOut(out.as_mut_ptr());
    let codes = SharedIn(w.planes[0].as_ptr());
    let pl = scratch::lines(ng);
    let (packed_len, rows_len) = (
        scratch::lines(chunk_panels * nr * k),
        scratch::lines(nr * kp),
    );
    run_tiled(pool, panels, m, mr, &|p0, p1, i0, i1| {
        scratch::with(packed_len + rows_len + 2 * pl, |buf| {
            let (packed, rest) = buf.split_at_mut(packed_len);
            let (rows_buf, rest) = rest.split_at_mut(rows_len);
            let (s, z) = rest.split_at_mut(pl);
            for c0 in (p0..p1).step_by(chunk_panels) {
                let c1 = (c0 + chunk_panels).min(p1);
                for p in c0..c1 {
                    let j = p * nr;
                    let rows = (n - j).min(nr);
                    for r in 0..rows {
                        row_params::<I>(w, j + r, s, z);
                        // Safety: row j + r exists (rb bytes, checked by
                        // `linear`); rows_buf holds nr·kp floats.
                        unsafe {
                            I::decode_row(
                                kind,
                                codes.get().add((j + r) * rb),
                                s.as_ptr(),
                                z.as_ptr(),
                                group,
                                k,
                                rows_buf.as_mut_ptr().add(r * kp),
                            )
                        }
                    }
                    // Safety: `rows` decoded rows of kp floats; the panel
                    // holds k·NR floats.
                    unsafe {
                        I::Float::pack_b(
                            rows_buf.as_ptr().cast(),
                            false,
                            kp,
                            rows,
                            k,
                            packed.as_mut_ptr().add((p - c0) * nr * k),
                        )
                    }
                }
                for i in (i0..i1).step_by(mr) {
                    let rows = (i1 - i).min(mr);
                    for p in c0..c1 {
                        let j = p * nr;
                        let cols = (n - j).min(nr);
                        let mut b = [0.0f32; 32];
                        let init = match bias {
                            Some(bias) => {
                                b[..cols].copy_from_slice(&bias[j..j + cols]);
                                Init::Bias(b.as_ptr())
                            }
                            None => Init::Zero,
                        };
                        // Safety: as in `gemm::linear_packed`.
                        unsafe {
                            I::Float::kernel(
                                rows,
                                cols,
                                k,
                                x.as_ptr().add(i * k),
                                k,
                                1,
                                packed.as_ptr().add((p - c0) * nr * k),
                                nr,
                                out.ptr().add(i * n + j),
                                n,
                                init,
                            )
                        }
                    }
                }
            }
        })
    });
}

/// x rows per int8 tile.
const I8_ROWS: usize = 4;
/// Weight rows an int8 task keeps in cache while every x tile passes over them.
const I8_BLOCK_BYTES: usize = 64 * 1024;

#[allow(clippy::too_many_arguments)]
fn linear_int8<I: PackedSimd>(
    pool: &Pool,
    x: &[f32],
    m: usize,
    k: usize,
    w: &PackedWeights,
    act: ActQuant,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let n = w.n;
    // Quantize x (exactly as the reference) into rows zero-padded to 64.
    let kq = k.next_multiple_of(64);
    let mut xq = vec![0i8; m * kq];
    let mut sx = vec![0.0f32; m];
    let mut xsum = vec![0i32; m];
    {
        const ROWS: usize = 16;
        let (cp, sp, qp) = (
            SharedMut(xq.as_mut_ptr()),
            SharedMut(sx.as_mut_ptr()),
            SharedMut(xsum.as_mut_ptr()),
        );
        let tasks = m.div_ceil(ROWS);
        let x = &x[..m * k];
        let quantize = |t: usize| {
            for r in t * ROWS..((t + 1) * ROWS).min(m) {
                // Safety: row r belongs to this task; x row r has k floats,
                // xq row r kq ≥ k codes; the buffers outlive the job.
                unsafe {
                    let (s, q) =
                        I::quantize_row(x.as_ptr().add(r * k), k, act, cp.get().add(r * kq));
                    *sp.get().add(r) = s;
                    *qp.get().add(r) = q;
                }
            }
        };
        if tasks == 1 {
            quantize(0)
        } else {
            pool.run(tasks, &quantize)
        }
    }
    if I::I8_NR > 0 && m >= DOT_MAX_M {
        return gemm_int8::<I>(pool, &xq, kq, &xsum, &sx, m, k, w, bias, out);
    }
    let groups = n.div_ceil(4);
    // Weight rows per block: enough to fill I8_BLOCK_BYTES, whole groups of 4.
    let block = (I8_BLOCK_BYTES / k / 4).max(1);
    let tasks = if m < DOT_MAX_M {
        dot_tasks(pool, groups)
    } else {
        groups.div_ceil(block).min(pool.threads() * 4).max(1)
    };
    let out = SharedOut(out.as_mut_ptr());
    let wp = SharedIn(w.planes[0].as_ptr());
    let (xq, xsum, sx) = (&xq, &xsum, &sx);
    pool.run(tasks, &|t| {
        let (g0, g1) = split(groups, tasks, t);
        let mut gb = g0;
        while gb < g1 {
            let ge = (gb + block).min(g1);
            for i in (0..m).step_by(I8_ROWS) {
                let rows = (m - i).min(I8_ROWS);
                for g in gb..ge {
                    let j = 4 * g;
                    let cols = (n - j).min(4);
                    let wr: [*const u8; 4] = std::array::from_fn(|c| {
                        wp.get()
                            .wrapping_add((j + if c < cols { c } else { 0 }) * k)
                    });
                    let mut dots = [[0i32; 4]; 4];
                    // Safety: x rows i..i+rows (kq bytes each, zero-padded),
                    // their sums, and weight rows j..j+cols (k bytes each).
                    unsafe {
                        I::dot_i8(
                            rows,
                            k,
                            xq.as_ptr().add(i * kq),
                            kq,
                            xsum.as_ptr().add(i),
                            wr,
                            &mut dots,
                        )
                    };
                    for r in 0..rows {
                        for c in 0..cols {
                            let b = bias.map_or(0.0, |b| b[j + c]);
                            let v = (sx[i + r] * int8_scale(w, j + c)) * dots[r][c] as f32 + b;
                            // Safety: output (i + r, j + c) belongs to this task.
                            unsafe { *out.ptr().add((i + r) * n + j + c) = v };
                        }
                    }
                }
            }
            gb = ge;
        }
    });
}

/// Bytes of repacked int8 weights per chunk (kept in L2 while every x
/// micro-tile passes over it).
const I8_CHUNK_BYTES: usize = 384 * 1024;

/// Int8 × int8 GEMM for m ≥ [`DOT_MAX_M`]: `linear_gemm`'s loop nest, with
/// weight chunks repacked into `[k4/4][I8_NR][4]`-byte panels for `gemm_i8`.
#[allow(clippy::too_many_arguments)]
fn gemm_int8<I: PackedSimd>(
    pool: &Pool,
    xq: &[i8],
    kq: usize,
    xsum: &[i32],
    sx: &[f32],
    m: usize,
    k: usize,
    w: &PackedWeights,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let n = w.n;
    let (mr, nr) = (I::I8_MR, I::I8_NR);
    let k4 = k.next_multiple_of(4);
    let panels = n.div_ceil(nr);
    let chunk_panels = (I8_CHUNK_BYTES / (k4 * nr)).clamp(1, panels);
    let out = SharedOut(out.as_mut_ptr());
    let codes = w.planes[0];
    // Per chunk: panels, then per panel NR weight scales and NR biases.
    let (panel_len, par_len) = (k4 * nr, chunk_panels * nr);
    run_tiled(pool, panels, m, mr, &|p0, p1, i0, i1| {
        let mut packed = vec![0u8; chunk_panels * panel_len];
        let mut sw = vec![0.0f32; par_len];
        let mut bs = vec![0.0f32; par_len];
        for c0 in (p0..p1).step_by(chunk_panels) {
            let c1 = (c0 + chunk_panels).min(p1);
            for p in c0..c1 {
                let j = p * nr;
                let rows = (n - j).min(nr);
                let q = p - c0;
                pack_i8_panel(
                    &codes[j * k..(j + rows) * k],
                    rows,
                    k,
                    nr,
                    &mut packed[q * panel_len..(q + 1) * panel_len],
                );
                for c in 0..nr {
                    let valid = c < rows;
                    sw[q * nr + c] = if valid { int8_scale(w, j + c) } else { 0.0 };
                    bs[q * nr + c] = match bias {
                        Some(b) if valid => b[j + c],
                        _ => 0.0,
                    };
                }
            }
            for i in (i0..i1).step_by(mr) {
                let rows = (i1 - i).min(mr);
                for p in c0..c1 {
                    let j = p * nr;
                    let q = p - c0;
                    // Safety: x rows i..i+rows (kq ≥ k4 codes each, zero past
                    // k), their sums and scales; a whole panel and NR scales
                    // and biases; output rows i..i+rows, columns j..j+cols of
                    // this task only.
                    unsafe {
                        I::gemm_i8(
                            rows,
                            (n - j).min(nr),
                            k4,
                            xq.as_ptr().add(i * kq),
                            kq,
                            xsum.as_ptr().add(i),
                            sx.as_ptr().add(i),
                            packed.as_ptr().add(q * panel_len),
                            sw.as_ptr().add(q * nr),
                            bs.as_ptr().add(q * nr),
                            out.ptr().add(i * n + j),
                            n,
                        )
                    }
                }
            }
        }
    });
}

/// Low-bit × int8 group parameters `(s_g, z_g)` of weight rows `j0..j1`,
/// row-major into `sr` / `zr` (`lowbit_params`' values: nf4 `absmax / 127`,
/// zero 0), the contiguous planes converted in one pass.
fn block_params<I: PackedSimd>(
    w: &PackedWeights,
    j0: usize,
    j1: usize,
    sr: &mut [f32],
    zr: &mut [f32],
) {
    let ng = w.groups_per_row();
    let cnt = (j1 - j0) * ng;
    let (sr, zr) = (&mut sr[..cnt], &mut zr[..cnt]);
    let (p1, p2) = (w.planes[1], w.planes[2]);
    let g0 = j0 * ng;
    match w.scheme {
        Scheme::Int4Sym | Scheme::Int4Asym | Scheme::Int3 => {
            assert!(p1.len() >= 2 * (g0 + cnt));
            // Safety: bounds checked above (and for zeros below).
            unsafe { I::f16_to_f32(p1.as_ptr().add(2 * g0), cnt, sr.as_mut_ptr()) };
            if w.scheme == Scheme::Int4Sym {
                zr.fill(8.0);
            } else {
                assert!(p2.len() >= 2 * (g0 + cnt));
                unsafe { I::f16_to_f32(p2.as_ptr().add(2 * g0), cnt, zr.as_mut_ptr()) };
            }
        }
        Scheme::Nf4 => {
            assert!(p1.len() >= 4 * (g0 + cnt));
            for (o, b) in sr.iter_mut().zip(p1[4 * g0..].chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]) / 127.0;
            }
            zr.fill(0.0);
        }
        Scheme::Nf4Dq => {
            // Chunks of 256 groups (over the whole tensor) share min / step;
            // the absmax as `schemes`' decode (product rounded, then the sum).
            assert!(p1.len() >= g0 + cnt);
            let mut i = 0;
            while i < cnt {
                let c = (g0 + i) / 256;
                let end = ((c + 1) * 256 - g0).min(cnt);
                let (min, step) = (le_f32(p2, 2 * c), le_f32(p2, 2 * c + 1));
                for (o, &q) in sr[i..end].iter_mut().zip(&p1[g0 + i..g0 + end]) {
                    *o = (min + q as f32 * step) / 127.0;
                }
                i = end;
            }
            zr.fill(0.0);
        }
        Scheme::Int8Row | Scheme::Int8Tensor => unreachable!("int8 weights take the int8 path"),
    }
}

/// Low-bit weights × int8 activations: x quantized as in `linear_int8`, its
/// per-group code sums taken once, then `dot_lowbit` tiles of 4 x rows × 4
/// weight rows, weight rows blocked so a block stays in cache while every x
/// tile passes over it (m ≥ `DOT_MAX_M`).
#[allow(clippy::too_many_arguments)]
fn linear_lowbit<I: PackedSimd>(
    pool: &Pool,
    x: &[f32],
    m: usize,
    k: usize,
    w: &PackedWeights,
    act: ActQuant,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let n = w.n;
    let kind = Kind::of(w.scheme);
    let (group, ng, rb) = (w.group, w.groups_per_row(), w.row_bytes());
    let (nc, perm) = I::lowbit_shape(kind, group);
    let gemm = I::LB_NR > 0 && m >= DOT_MAX_M;
    let perm = perm && !gemm;
    let kq = k.next_multiple_of(64);
    let mut xq = vec![0i8; m * kq];
    let mut sx = vec![0.0f32; m];
    let mut xsg = vec![0i32; m * ng];
    {
        const ROWS: usize = 16;
        let (cp, sp, gp) = (
            SharedMut(xq.as_mut_ptr()),
            SharedMut(sx.as_mut_ptr()),
            SharedMut(xsg.as_mut_ptr()),
        );
        let x = &x[..m * k];
        let quantize = |t: usize| {
            for r in t * ROWS..((t + 1) * ROWS).min(m) {
                // Safety: row r belongs to this task; x row r has k floats,
                // xq row r kq ≥ k codes, xsg row r ng sums; the buffers
                // outlive the job.
                unsafe {
                    let q = cp.get().add(r * kq);
                    let (s, _) = I::quantize_row(x.as_ptr().add(r * k), k, act, q);
                    *sp.get().add(r) = s;
                    let q = std::slice::from_raw_parts_mut(q, kq);
                    for (g, qg) in q[..k].chunks(group).enumerate() {
                        *gp.get().add(r * ng + g) = qg.iter().map(|&v| v as i32).sum();
                    }
                    if perm {
                        permute_x64(q);
                    }
                }
            }
        };
        let tasks = m.div_ceil(ROWS);
        if tasks == 1 {
            quantize(0)
        } else {
            pool.run(tasks, &quantize)
        }
    }
    if gemm {
        return gemm_lowbit::<I>(pool, kind, xq_parts(&xq, kq, &xsg, &sx), m, k, w, bias, out);
    }
    let groups = n.div_ceil(nc);
    let block = (I8_BLOCK_BYTES / rb / nc).max(1);
    let tasks = if m < DOT_MAX_M {
        // As dot_tasks, counted in 4-row units.
        dot_tasks(pool, n.div_ceil(4)).min(groups)
    } else {
        groups.div_ceil(block).min(pool.threads() * 4).max(1)
    };
    let out = SharedOut(out.as_mut_ptr());
    let wp = SharedIn(w.planes[0].as_ptr());
    let (xq, xsg, sx) = (&xq, &xsg, &sx);
    pool.run(tasks, &|t| {
        let (g0, g1) = split(groups, tasks, t);
        // The block's rows' group parameters, row-major (as the planes).
        let per = nc * ng;
        let mut sr = vec![0.0f32; block.min(g1 - g0) * per];
        let mut zr = sr.clone();
        {
            let mut gb = g0;
            while gb < g1 {
                let ge = (gb + block).min(g1);
                let (j0, j1) = (nc * gb, (nc * ge).min(n));
                block_params::<I>(w, j0, j1, &mut sr, &mut zr);
                for i in (0..m).step_by(I8_ROWS) {
                    let rows = (m - i).min(I8_ROWS);
                    for g in gb..ge {
                        let j = nc * g;
                        let cols = (n - j).min(nc);
                        let mut b = [0.0f32; 16];
                        if let Some(bias) = bias {
                            b[..cols].copy_from_slice(&bias[j..j + cols]);
                        }
                        let tile = LowbitTile {
                            xq: xq[i * kq..].as_ptr(),
                            ldx: kq,
                            xsg: xsg[i * ng..].as_ptr(),
                            sx: sx[i..].as_ptr(),
                            codes: wp.get().wrapping_add(j * rb),
                            rb,
                            ps: sr[(g - gb) * per..].as_ptr(),
                            pz: zr[(g - gb) * per..].as_ptr(),
                            bias: b.as_ptr(),
                        };
                        // Safety: x rows i..i+rows (kq codes, ng sums, one
                        // scale each), weight rows j..j+cols (rb bytes each,
                        // checked by `linear`), NC·ng parameters, and output
                        // columns j..j+cols of rows i..i+rows (this task's).
                        unsafe {
                            I::dot_lowbit(
                                kind,
                                rows,
                                cols,
                                k,
                                group,
                                tile,
                                out.ptr().add(i * n + j),
                                n,
                            )
                        }
                    }
                }
                gb = ge;
            }
        }
    });
}

/// Quantized x: codes (rows of `kq`), per-group code sums, row scales.
#[derive(Clone, Copy)]
struct XParts<'a> {
    xq: &'a [i8],
    kq: usize,
    xsg: &'a [i32],
    sx: &'a [f32],
}

fn xq_parts<'a>(xq: &'a [i8], kq: usize, xsg: &'a [i32], sx: &'a [f32]) -> XParts<'a> {
    XParts { xq, kq, xsg, sx }
}

/// Low-bit × int8 GEMM for m ≥ [`DOT_MAX_M`]: `gemm_int8`'s loop nest, each
/// weight chunk's rows unpacked once into `[kp/4][LB_NR][4]` integer-code
/// panels (with `[ng][LB_NR]` group parameters), every x micro-tile passing
/// over the chunk.
#[allow(clippy::too_many_arguments)]
fn gemm_lowbit<I: PackedSimd>(
    pool: &Pool,
    kind: Kind,
    x: XParts,
    m: usize,
    k: usize,
    w: &PackedWeights,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let n = w.n;
    let (mr, nr) = (I::LB_MR, I::LB_NR);
    let (group, ng, rb) = (w.group, w.groups_per_row(), w.row_bytes());
    let kp = k.next_multiple_of(32);
    let panels = n.div_ceil(nr);
    let chunk_panels = (I8_CHUNK_BYTES / (kp * nr)).clamp(1, panels);
    let out = SharedOut(out.as_mut_ptr());
    let codes = w.planes[0];
    let (panel_len, par_len) = (kp * nr, ng * nr);
    run_tiled(pool, panels, m, mr, &|p0, p1, i0, i1| {
        let mut packed = vec![0u8; chunk_panels * panel_len];
        let mut ps = vec![0.0f32; chunk_panels * par_len];
        let mut pz = ps.clone();
        let mut bs = vec![0.0f32; chunk_panels * nr];
        let (mut sr, mut zr) = (vec![0.0f32; nr * ng], vec![0.0f32; nr * ng]);
        let mut row = vec![0u8; kp];
        for c0 in (p0..p1).step_by(chunk_panels) {
            let c1 = (c0 + chunk_panels).min(p1);
            for p in c0..c1 {
                let j = p * nr;
                let rows = (n - j).min(nr);
                let q = p - c0;
                pack_lowbit_panel(
                    kind,
                    &codes[j * rb..(j + rows) * rb],
                    rb,
                    rows,
                    kp,
                    nr,
                    &mut row,
                    &mut packed[q * panel_len..(q + 1) * panel_len],
                );
                block_params::<I>(w, j, j + rows, &mut sr, &mut zr);
                for c in 0..nr {
                    let src = c.min(rows - 1) * ng;
                    for g in 0..ng {
                        ps[q * par_len + g * nr + c] = sr[src + g];
                        pz[q * par_len + g * nr + c] = zr[src + g];
                    }
                    bs[q * nr + c] = match bias {
                        Some(b) if c < rows => b[j + c],
                        _ => 0.0,
                    };
                }
            }
            for i in (i0..i1).step_by(mr) {
                let rows = (i1 - i).min(mr);
                for p in c0..c1 {
                    let j = p * nr;
                    let q = p - c0;
                    let tile = LowbitTile {
                        xq: x.xq[i * x.kq..].as_ptr(),
                        ldx: x.kq,
                        xsg: x.xsg[i * ng..].as_ptr(),
                        sx: x.sx[i..].as_ptr(),
                        codes: std::ptr::null(),
                        rb: 0,
                        ps: ps[q * par_len..].as_ptr(),
                        pz: pz[q * par_len..].as_ptr(),
                        bias: bs[q * nr..].as_ptr(),
                    };
                    // Safety: x rows i..i+rows (kq ≥ kp codes, zero past k;
                    // ng sums; a scale), a whole panel with its parameters and
                    // biases, output rows i..i+rows × columns j..j+cols of this
                    // task only.
                    unsafe {
                        I::gemm_lowbit(
                            kind == Kind::Nf4,
                            rows,
                            (n - j).min(nr),
                            kp,
                            group,
                            tile,
                            packed.as_ptr().add(q * panel_len),
                            out.ptr().add(i * n + j),
                            n,
                        )
                    }
                }
            }
        }
    });
}
