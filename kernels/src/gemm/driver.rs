//! The one GEMM loop nest, shared by every family of `linear`: f32 / f16
//! weights (`f16.rs`), weight-only packed weights (`packed.rs`), int8 × int8
//! (`int8.rs`) and low-bit × int8 (`lowbit.rs`).
//!
//! It is the BLIS loop nest (Van Zee & van de Geijn, "BLIS: A Framework for
//! Rapidly Instantiating BLAS Functionality", 2015) without packing A: x is
//! read in place (or, for the int8 families, from its already-quantized
//! rows), and only the weights — the B operand, `[n × k]` — are packed. A
//! family says how a weight panel is packed and how a micro-tile of x meets
//! a packed panel ([`Plan`]); the nest says in what order, and is written
//! once.
//!
//! Every output element is computed by exactly one micro-kernel call over
//! the whole of k, so the nest's blocking never changes a result: the order
//! of operations per element is the micro-kernel's alone.

use crate::{tuning, Pool};

/// A GEMM family: a packer (weight rows → one panel in the task's scratch)
/// and a micro-kernel (one `MR × NR` output tile from x rows and a packed
/// panel), which agree on the panel layout.
pub(crate) trait Plan: Sync {
    /// x rows per micro-tile.
    const MR: usize;
    /// Weight rows (output columns) per panel.
    const NR: usize;
    /// A task's scratch: room for a chunk's packed panels and whatever the
    /// packer keeps per panel (scales, biases).
    type Scratch<'s>;

    /// Bytes of one packed panel (sizes the chunk, see [`gemm`]).
    fn panel_bytes(&self) -> usize;
    /// Runs `body` with a scratch for `chunk_panels` panels.
    fn with_scratch<R>(
        &self,
        chunk_panels: usize,
        body: impl for<'s> FnOnce(&mut Self::Scratch<'s>) -> R,
    ) -> R;
    /// Packs weight rows `j..j + cols` (`cols ≤ NR`) into panel slot `slot`.
    fn pack(&self, s: &mut Self::Scratch<'_>, slot: usize, j: usize, cols: usize);
    /// Computes output rows `i..i + rows` (`rows ≤ MR`) × columns
    /// `j..j + cols` from the panel in slot `slot`. The caller owns that
    /// part of the output: no other task writes it.
    fn tile(
        &self,
        s: &Self::Scratch<'_>,
        slot: usize,
        i: usize,
        rows: usize,
        j: usize,
        cols: usize,
    );
}

/// `out[m × n]` by `plan` on the pool.
pub(crate) fn gemm<P: Plan>(pool: &Pool, plan: &P, m: usize, n: usize) {
    let (mr, nr) = (P::MR, P::NR);
    let panels = n.div_ceil(nr);
    // Panels per chunk: the packed chunk stays around CHUNK_BYTES.
    let chunk_panels = (tuning::CHUNK_BYTES / plan.panel_bytes()).clamp(1, panels);
    // Loop 0 (threads): the panels (= output columns) are split into
    // contiguous ranges, so every thread reads a disjoint part of the
    // weights, once; x rows are split too when there are too few panels.
    run_tiled(pool, panels, m, mr, &|p0, p1, i0, i1| {
        plan.with_scratch(chunk_panels, |s| {
            // Loop 1 (L2): the task's panels in chunks of `chunk_panels`,
            // sized so the packed chunk stays in L2 while every micro-tile
            // of x passes over it.
            for c0 in (p0..p1).step_by(chunk_panels) {
                let c1 = (c0 + chunk_panels).min(p1);
                // Loop 2 (packing): each panel of the chunk is packed once
                // (converted, decoded or repacked; transposed to `[k][NR]`),
                // so the weights are read from memory once per call.
                for p in c0..c1 {
                    let j = p * nr;
                    plan.pack(s, p - c0, j, (n - j).min(nr));
                }
                // Loop 3 (L1): `MR` rows of x at a time, which stay in L1
                // while they meet every panel of the chunk.
                for i in (i0..i1).step_by(mr) {
                    let rows = (i1 - i).min(mr);
                    // Loop 4 (registers): the micro-kernel keeps an
                    // `MR × NR` output tile in registers across all of k and
                    // writes it once.
                    for p in c0..c1 {
                        let j = p * nr;
                        plan.tile(s, p - c0, i, rows, j, (n - j).min(nr));
                    }
                }
            }
        })
    });
}

/// Splits `0..units` into `parts` contiguous ranges differing by at most one.
pub(crate) fn split(units: usize, parts: usize, i: usize) -> (usize, usize) {
    let (q, r) = (units / parts, units % parts);
    let start = i * q + i.min(r);
    (start, start + q + usize::from(i < r))
}

/// Runs a GEMM's tasks on the pool: the `panels` weight panels are split over
/// up to 2 × threads tasks, and the `m` x rows too (in micro-tiles of `mr`)
/// when there are fewer panels than threads (narrow outputs) and enough rows.
/// `task(p0, p1, i0, i1)` computes panels `p0..p1` for x rows `i0..i1`.
pub(crate) fn run_tiled(
    pool: &Pool,
    panels: usize,
    m: usize,
    mr: usize,
    task: &(dyn Fn(usize, usize, usize, usize) + Sync),
) {
    let threads = pool.threads();
    let n_parts = panels.min(threads * 2);
    let m_parts = if n_parts >= threads {
        1
    } else {
        (threads / n_parts).min(m.div_ceil(4 * mr)).max(1)
    };
    pool.run(n_parts * m_parts, &|t| {
        let (p0, p1) = split(panels, n_parts, t / m_parts);
        let (i0, i1) = split(m.div_ceil(mr), m_parts, t % m_parts);
        task(p0, p1, i0 * mr, (i1 * mr).min(m))
    });
}
