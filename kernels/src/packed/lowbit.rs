//! Low-bit × int8 layers (4- / 3-bit weights with `Dynamic` / `Static`
//! activations): x quantized with its per-group code sums (`quant.rs`; for
//! sets that ask, codes reordered to the order their unpack yields,
//! `quant::XOrder`), then `dot_lowbit` tiles of x rows × NC weight rows (NC = 4, or 16
//! on VNNI): codes unpacked in registers, exact i32 group dots, the float
//! part in the reference's order, so outputs are bit identical to
//! `schemes::linear_reference`. The group parameters of a block of weight
//! rows are converted once (f16 → f32 in one call, nf4's `/127`) and the
//! tiles gather them. For m ≥ `INT8_GEMM_MIN_M` a set with a low-bit GEMM
//! (`LB_NR > 0`: every SIMD set) hands over to `gemm/lowbit.rs`; the scalar
//! set uses the tiles, weight rows blocked to stay in cache while every x
//! tile passes.

use super::quant::{quantize, Sums, XOrder};
use super::{le_f32, Kind, LowbitTile, PackedSimd};
use crate::gemm::split;
use crate::operands::{Out, Tile};
use crate::schemes::{ActQuant, PackedWeights, Scheme};
use crate::sync_ptr::{SharedConst, SharedMut};
use crate::tuning::{dot_tasks, I8_BLOCK_BYTES, I8_ROWS, INT8_GEMM_MIN_M};
use crate::Pool;

/// Low-bit weights × int8 activations: x quantized (`quant.rs`), its
/// per-group code sums taken once, then `dot_lowbit` tiles of 4 x rows × 4
/// weight rows, weight rows blocked so a block stays in cache while every x
/// tile passes over it (m ≥ `INT8_GEMM_MIN_M` without a low-bit GEMM).
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear<I: PackedSimd>(
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
    let (nc, order) = I::lowbit_shape(kind, group);
    let gemm = I::LB_NR > 0 && m >= INT8_GEMM_MIN_M;
    let order = if gemm { XOrder::Element } else { order };
    let xq = quantize::<I>(pool, x, m, k, act, Sums::Groups { group, order });
    if gemm {
        return crate::gemm::lowbit::linear::<I>(pool, kind, &xq, m, w, bias, out);
    }
    let kq = xq.kq;
    let groups = n.div_ceil(nc);
    let block = (I8_BLOCK_BYTES / rb / nc).max(1);
    let tasks = if m < INT8_GEMM_MIN_M {
        // As dot_tasks, counted in 4-row units.
        dot_tasks(pool.threads(), n.div_ceil(4)).min(groups)
    } else {
        groups.div_ceil(block).min(pool.threads() * 4).max(1)
    };
    let out = SharedMut::new(out);
    let wp = SharedConst::new(w.planes[0].as_ptr());
    let (xq, xsg, sx) = (&xq.codes, &xq.sums, &xq.scales);
    pool.run(tasks, &|t| {
        let (g0, g1) = split(groups, tasks, t);
        // The block's tiles' group parameters, group-major per tile.
        let per = nc * ng;
        let mut ps = vec![0.0f32; block.min(g1 - g0) * per];
        let mut pz = ps.clone();
        let mut dq = Vec::new();
        {
            let mut gb = g0;
            while gb < g1 {
                let ge = (gb + block).min(g1);
                for g in gb..ge {
                    let (o, j) = ((g - gb) * per, nc * g);
                    let (ps, pz) = (&mut ps[o..o + per], &mut pz[o..o + per]);
                    tile_params::<I>(w, j, (n - j).min(nc), nc, ps, pz, &mut dq);
                }
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
                            ps: ps[(g - gb) * per..].as_ptr(),
                            pz: pz[(g - gb) * per..].as_ptr(),
                            bias: b.as_ptr(),
                        };
                        // Safety: x rows i..i+rows (kq codes, ng sums, one
                        // scale each), weight rows j..j+cols (rb bytes each,
                        // checked by `linear`), NC·ng parameters, and output
                        // columns j..j+cols of rows i..i+rows (this task's).
                        unsafe {
                            I::dot_lowbit(
                                kind,
                                Tile { rows, cols },
                                k,
                                group,
                                tile,
                                Out {
                                    ptr: out.get().add(i * n + j),
                                    row_stride: n,
                                },
                            )
                        }
                    }
                }
                gb = ge;
            }
        }
    });
}

/// Rows of group parameters in memory: element `e` at `ptr + 2e` (half
/// floats) or `ptr + 4e` (f32), little-endian; row c starts at element
/// `c·stride`.
#[derive(Clone, Copy)]
pub(crate) struct ParamRows {
    pub ptr: *const u8,
    pub half: bool,
    pub stride: usize,
}

/// Low-bit × int8 group parameters `(s_g, z_g)` of weight rows `j..j + cols`
/// (`lowbit_params`' values: nf4 `absmax / 127`, zero 0), group-major into a
/// tile `nc` columns wide: `ps[g·nc + c]`, columns from `cols` on repeating
/// the last row's; transposed by `PackedSimd::group_major` (in registers
/// where the set can). `rows`: room for parameters decoded row-major first.
pub(crate) fn tile_params<I: PackedSimd>(
    w: &PackedWeights,
    j: usize,
    cols: usize,
    nc: usize,
    ps: &mut [f32],
    pz: &mut [f32],
    rows: &mut Vec<f32>,
) {
    let ng = w.groups_per_row();
    let (ps, pz) = (&mut ps[..ng * nc], &mut pz[..ng * nc]);
    let (p1, p2) = (w.planes[1], w.planes[2]);
    let (g0, cnt) = (j * ng, cols * ng);
    assert!(cols >= 1 && cols <= nc);
    let plane_rows = |plane: &[u8], half: bool| ParamRows {
        ptr: plane[if half { 2 } else { 4 } * g0..].as_ptr(),
        half,
        stride: ng,
    };
    // Safety (every `group_major` below): rows j..j + cols' parameters are in
    // the plane (asserted first), and ps / pz hold ng·nc floats.
    match w.scheme {
        Scheme::Int4Sym | Scheme::Int4Asym | Scheme::Int3 => {
            assert!(p1.len() >= 2 * (g0 + cnt));
            unsafe { I::group_major(plane_rows(p1, true), cols, ng, nc, ps.as_mut_ptr()) };
            if w.scheme == Scheme::Int4Sym {
                pz.fill(8.0);
            } else {
                assert!(p2.len() >= 2 * (g0 + cnt));
                unsafe { I::group_major(plane_rows(p2, true), cols, ng, nc, pz.as_mut_ptr()) };
            }
        }
        Scheme::Nf4 => {
            assert!(p1.len() >= 4 * (g0 + cnt));
            unsafe { I::group_major(plane_rows(p1, false), cols, ng, nc, ps.as_mut_ptr()) };
            for v in ps.iter_mut() {
                *v /= 127.0;
            }
            pz.fill(0.0);
        }
        Scheme::Nf4Dq => {
            // Chunks of 256 groups (over the whole tensor) share min / step;
            // the absmax as `schemes`' decode (product rounded, then the sum).
            // Decoded row-major into `rows`, then transposed.
            assert!(p1.len() >= g0 + cnt);
            rows.resize(cnt, 0.0);
            let mut i = 0;
            while i < cnt {
                let c = (g0 + i) / 256;
                let end = ((c + 1) * 256 - g0).min(cnt);
                let (min, step) = (le_f32(p2, 2 * c), le_f32(p2, 2 * c + 1));
                for (o, &q) in rows[i..end].iter_mut().zip(&p1[g0 + i..g0 + end]) {
                    *o = (min + q as f32 * step) / 127.0;
                }
                i = end;
            }
            let src = ParamRows {
                ptr: rows.as_ptr().cast(),
                half: false,
                stride: ng,
            };
            unsafe { I::group_major(src, cols, ng, nc, ps.as_mut_ptr()) };
            pz.fill(0.0);
        }
        Scheme::Int8Row | Scheme::Int8Tensor => unreachable!("int8 weights take the int8 path"),
    }
}

/// The portable `PackedSimd::group_major`: each row converted (half floats
/// by the set's `f16_to_f32`), then spread into the tile.
///
/// # Safety
/// `cols ≥ 1` rows of `ng` parameters at `src`; `dst` holds `ng·nc` floats.
pub(crate) unsafe fn group_major_rows<I: PackedSimd + ?Sized>(
    src: ParamRows,
    cols: usize,
    ng: usize,
    nc: usize,
    dst: *mut f32,
) {
    const CHUNK: usize = 64;
    let mut row = [0.0f32; CHUNK];
    for c in 0..nc {
        let r = c.min(cols - 1) * src.stride;
        for g0 in (0..ng).step_by(CHUNK) {
            let len = (ng - g0).min(CHUNK);
            if src.half {
                I::f16_to_f32(src.ptr.add(2 * (r + g0)), len, row.as_mut_ptr());
            } else {
                let bytes = std::slice::from_raw_parts(src.ptr.add(4 * (r + g0)), 4 * len);
                for (o, b) in row.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            for (gi, &v) in row[..len].iter().enumerate() {
                *dst.add((g0 + gi) * nc + c) = v;
            }
        }
    }
}

/// Stored code of element `e` of a row (`Kind::Affine3` or a 4-bit kind).
///
/// # Safety
/// `codes` must hold the row's whole blocks.
pub(crate) unsafe fn code_at(kind: Kind, codes: *const u8, e: usize) -> u8 {
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
pub(crate) unsafe fn lowbit_scalar(
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
    // The portable tile is NC = 4 columns wide (`PackedSimd::lowbit_shape`).
    let nc = 4;
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
                let (s, z) = (*t.ps.add(g * nc + c), *t.pz.add(g * nc + c));
                acc += s * (d as f32 - z * sx as f32);
            }
            *out.add(r * ldo + c) = *t.sx.add(r) * acc + *t.bias.add(c);
        }
    }
}
