//! The attention driver shared by every SIMD instruction set.
//!
//! * **Blocked** (n_q ≥ [`ATTENTION_DOT_MAX_Q`], the encoder): one pool task per
//!   (head, block of `QB` query rows). A task computes the transposed scores
//!   `Sᵀ[j][c] = k_j · q_c` for its block with the GEMM micro-kernel (K rows
//!   as A, the query block packed as B), a column-wise softmax
//!   over j (vectorised across queries, no horizontal reductions), then
//!   `O = P · V` with the same micro-kernel (Sᵀ read as A with swapped strides,
//!   V rows as B when `head_dim` is a whole number of panels). K and V are
//!   first copied head-major (each head's rows contiguous) by one pool pass
//!   shared by all tasks. The
//!   1/Σ normalisation is applied to the output rows. Memory per task is
//!   `n_kv × QB` floats of scores, never `n_q × n_kv`.
//! * **Dot** (decoding, a few query rows): one task per (head, query row):
//!   a row of dot products, a row softmax, a weighted sum of V rows.
//!
//! K and V may be f16 (the decoder's caches): the dot path converts them in
//! registers, the blocked path in its head-major copy.
//!
//! Every instruction set computes the same operations in the same order, so
//! results are bit-identical to `scalar::attention` (which spells the order
//! out): scores and `P·V` are FMA chains in index order from zero (the
//! micro-kernel's order); a dot-path score and a dot-path softmax sum are 16
//! lane-wise partial sums (index mod 16) folded by halving (`i + 8`, `i + 4`,
//! `i + 2`, `i + 1`); the blocked softmax sums each column in row order; exp
//! is the shared polynomial with the same FMAs; weights whose exponent lies
//! below `EXP_MIN` are flushed to zero (subnormal products are slow and
//! irrelevant); the output is multiplied by `1 / sum`. Block sizes only
//! change how many exact zeros are added, never the value.

use crate::canonical::ATTENTION_DOT_MAX_Q;
use crate::operands::{Lhs, Out, Panel, Tile};
use crate::simd::{Init, Simd};
use crate::sync_ptr::{SharedConst, SharedMut};
use crate::{scratch, AttentionShape, Pool};

/// K / V rows copied per pool task before the blocked path.
const PACK_ROWS: usize = 256;

/// K or V: f32, or f16 bits.
#[derive(Clone, Copy)]
pub(crate) enum Kv<'a> {
    F32(&'a [f32]),
    F16(&'a [u16]),
}

impl Kv<'_> {
    fn raw(self) -> Raw {
        match self {
            Kv::F32(x) => Raw(SharedConst::new(x.as_ptr().cast()), false),
            Kv::F16(x) => Raw(SharedConst::new(x.as_ptr().cast()), true),
        }
    }
}

/// A read-only K or V view: base pointer, f16 flag.
#[derive(Clone, Copy)]
struct Raw(SharedConst<u8>, bool);

impl Raw {
    /// Element `i` (f32 or f16 units) as a byte pointer.
    fn at(self, i: usize) -> *const u8 {
        self.0.get().wrapping_add(i * if self.1 { 2 } else { 4 })
    }
    fn f16(self) -> bool {
        self.1
    }
}

type In = SharedConst<f32>;
type SharedOut = SharedMut<f32>;

pub(crate) fn attention<I: Simd>(
    pool: &Pool,
    q: &[f32],
    k: Kv,
    v: Kv,
    s: AttentionShape,
    out: &mut [f32],
) {
    let scale = 1.0 / (s.head_dim as f32).sqrt();
    let (q, k, v) = (In::new(q.as_ptr()), k.raw(), v.raw());
    let out = SharedOut::new(out);
    if s.n_q < ATTENTION_DOT_MAX_Q {
        attention_dot::<I>(pool, q, k, v, s, scale, out)
    } else {
        attention_blocked::<I>(pool, q, k, v, s, scale, out)
    }
}

fn attention_dot<I: Simd>(
    pool: &Pool,
    q: In,
    k: Raw,
    v: Raw,
    s: AttentionShape,
    scale: f32,
    out: SharedOut,
) {
    let d = s.head_dim;
    if s.causal_offset.is_none() && s.n_q > 1 {
        // Every query sees the same keys (cross-attention of a batch of
        // hypotheses): one task per head, the keys and values read once for
        // all its queries; each query's arithmetic as below.
        let n = s.n_kv;
        pool.run(s.n_head, &|h| {
            scratch::with(s.n_q * n, |p| {
                // Safety: as below; head h owns its d columns of every out row.
                unsafe {
                    I::dots_multi(
                        q.get().add(h * d),
                        s.q_stride,
                        s.n_q,
                        k.at(h * s.kv_head_stride),
                        k.f16(),
                        s.kv_stride,
                        n,
                        d,
                        p.as_mut_ptr(),
                        n,
                    );
                    let sums: Vec<f32> = p
                        .chunks_exact_mut(n)
                        .map(|row| I::softmax_row(row.as_mut_ptr(), n, scale))
                        .collect();
                    let o = out.get().add(h * d);
                    I::weighted_sum_multi(
                        p.as_ptr(),
                        n,
                        s.n_q,
                        v.at(h * s.kv_head_stride),
                        v.f16(),
                        s.kv_stride,
                        n,
                        d,
                        o,
                        s.out_stride,
                    );
                    for (i, sum) in sums.iter().enumerate() {
                        I::scale(o.add(i * s.out_stride), d, 1.0 / sum);
                    }
                }
            })
        });
        return;
    }
    pool.run(s.n_head * s.n_q, &|t| {
        let (h, i) = (t / s.n_q, t % s.n_q);
        let visible = s.keys_for_query(i);
        scratch::with(visible, |p| {
            // Safety: lib.rs checked that q, k, v and out hold n_q / n_kv rows
            // of n_head·head_dim floats at their strides; (h, i) owns its
            // d floats of out.
            unsafe {
                let o = out.get().add(i * s.out_stride + h * d);
                I::dots(
                    q.get().add(i * s.q_stride + h * d),
                    k.at(h * s.kv_head_stride),
                    k.f16(),
                    s.kv_stride,
                    visible,
                    d,
                    p.as_mut_ptr(),
                );
                let sum = I::softmax_row(p.as_mut_ptr(), visible, scale);
                I::weighted_sum(
                    p.as_ptr(),
                    v.at(h * s.kv_head_stride),
                    v.f16(),
                    s.kv_stride,
                    visible,
                    d,
                    o,
                );
                I::scale(o, d, 1.0 / sum);
            }
        })
    });
}

fn attention_blocked<I: Simd>(
    pool: &Pool,
    q: In,
    k: Raw,
    v: Raw,
    s: AttentionShape,
    scale: f32,
    out: SharedOut,
) {
    let (mr, nr, qb) = (I::MR, I::NR, I::QB);
    let d = s.head_dim;
    let blocks = s.n_q.div_ceil(qb);
    let v_direct = d.is_multiple_of(nr);
    // K and V are first copied (f16: converted) head-major, each head's rows
    // contiguous, `d` apart: in place, a head's rows lie a whole model width
    // apart (3·width with the fused QKV projection), a stride that maps them
    // onto a fraction of the L2 sets, where K, V and the score block of a
    // task evict each other.
    let head_len = s.n_kv * d;
    scratch::with(2 * s.n_head * head_len, |kvp| {
        let dst = SharedOut::new(kvp);
        let chunks = s.n_kv.div_ceil(PACK_ROWS);
        pool.run(2 * s.n_head * chunks, &|t| {
            let (x, h, c) = (t / (s.n_head * chunks), t / chunks % s.n_head, t % chunks);
            let src = if x == 0 { k } else { v };
            // Safety: lib.rs checked that k and v hold n_kv rows of
            // n_head·head_dim elements at kv_stride; task t owns rows
            // c·PACK_ROWS.. of head h of its matrix in the buffer.
            unsafe {
                let base = dst.get().add((x * s.n_head + h) * head_len);
                for j in c * PACK_ROWS..((c + 1) * PACK_ROWS).min(s.n_kv) {
                    let from = src.at(j * s.kv_stride + h * s.kv_head_stride);
                    if src.f16() {
                        I::cvt_f16(from.cast(), d, base.add(j * d));
                    } else {
                        std::ptr::copy_nonoverlapping(from.cast(), base.add(j * d), d);
                    }
                }
            }
        });
        let kvp = In::new(kvp.as_ptr());
        pool.run(s.n_head * blocks, &|t| {
            let (h, b) = (t / blocks, t % blocks);
            let i0 = b * qb;
            let nq = (s.n_q - i0).min(qb);
            let q_panels = nq.div_ceil(nr);
            // Keys the last (most-seeing) query of the block attends to.
            let kv = s.keys_for_query(i0 + nq - 1);
            // Query column c sees key j iff j < first_visible + c.
            let first_visible = match s.causal_offset {
                Some(o) => (i0 + o + 1).min(kv + 1),
                None => kv + 1,
            };
            let (q_len, st_len, sums_len) = (
                scratch::lines(q_panels * nr * d),
                scratch::lines(kv * qb),
                scratch::lines(qb),
            );
            let v_len = if v_direct { 0 } else { kv * nr };
            scratch::with(q_len + st_len + sums_len + v_len, |buf| {
                let (qp, rest) = buf.split_at_mut(q_len);
                let (st, rest) = rest.split_at_mut(st_len);
                let (sums, vp) = rest.split_at_mut(sums_len);
                // Safety: lib.rs checked the extents of q and out; the packed
                // K / V and the buffer parts are sized above; (h, block) owns
                // its rows × d floats of out.
                unsafe {
                    // This head's K / V rows, `d` apart.
                    let kh = kvp.get().add(h * head_len);
                    let vh = kvp.get().add((s.n_head + h) * head_len);
                    let kv_ld = d;
                    for pq in 0..q_panels {
                        let row = i0 + pq * nr;
                        I::pack_b(
                            q.get().add(row * s.q_stride + h * d).cast(),
                            false,
                            s.q_stride,
                            (nq - pq * nr).min(nr),
                            d,
                            qp.as_mut_ptr().add(pq * nr * d),
                        );
                    }
                    // Sᵀ = K · Qᵀ, kv × (q_panels·NR) of the qb-wide buffer.
                    for j in (0..kv).step_by(mr) {
                        for pq in 0..q_panels {
                            I::kernel(
                                Tile {
                                    rows: (kv - j).min(mr),
                                    cols: nr,
                                },
                                d,
                                Lhs {
                                    ptr: kh.add(j * kv_ld),
                                    row_stride: kv_ld,
                                    k_stride: 1,
                                },
                                Panel {
                                    ptr: qp.as_ptr().add(pq * nr * d),
                                    k_stride: nr,
                                },
                                Out {
                                    ptr: st.as_mut_ptr().add(j * qb + pq * nr),
                                    row_stride: qb,
                                },
                                Init::Zero,
                            );
                        }
                    }
                    I::softmax_cols(
                        st.as_mut_ptr(),
                        qb,
                        kv,
                        nq,
                        first_visible,
                        scale,
                        sums.as_mut_ptr(),
                    );
                    // O = P · V.
                    for c0 in (0..d).step_by(nr) {
                        let cols = (d - c0).min(nr);
                        let (b, ldb) = if v_direct {
                            (vh.add(c0), kv_ld)
                        } else {
                            for j in 0..kv {
                                let src = std::slice::from_raw_parts(vh.add(j * kv_ld + c0), cols);
                                let dst = &mut vp[j * nr..(j + 1) * nr];
                                dst[..cols].copy_from_slice(src);
                                dst[cols..].fill(0.0);
                            }
                            (vp.as_ptr(), nr)
                        };
                        for r in (0..nq).step_by(mr) {
                            I::kernel(
                                Tile {
                                    rows: (nq - r).min(mr),
                                    cols,
                                },
                                kv,
                                // Sᵀ read transposed: a query row is a column.
                                Lhs {
                                    ptr: st.as_ptr().add(r),
                                    row_stride: 1,
                                    k_stride: qb,
                                },
                                Panel {
                                    ptr: b,
                                    k_stride: ldb,
                                },
                                Out {
                                    ptr: out.get().add((i0 + r) * s.out_stride + h * d + c0),
                                    row_stride: s.out_stride,
                                },
                                Init::Zero,
                            );
                        }
                    }
                    for (r, &sum) in sums[..nq].iter().enumerate() {
                        I::scale(out.get().add((i0 + r) * s.out_stride + h * d), d, 1.0 / sum);
                    }
                }
            })
        });
    })
}
