//! AMX (Advanced Matrix Extensions) for the int8 × int8 GEMM: the one kernel
//! the `amx` set does not share with `avx512vnni`.
//!
//! AMX has 8 tile registers of up to 16 rows × 64 bytes, shaped by
//! `ldtilecfg`. `tdpbsud C, A, B` adds to each i32 `C[r][c]` the exact dot of
//! A's row r (64 signed bytes) with B's column c, whose 64 bytes are 4
//! consecutive bytes from each of B's 16 rows: the int8 GEMM panel's
//! `[k/4][NR][4]` layout, so `gemm/int8.rs`'s packer serves it as it is
//! (NR = 32: the two B tiles start 0 and 64 bytes into each 128-byte panel
//! row). B is unsigned, the panel's `w + 128`, so `128·Σx` comes off each
//! row as in the VNNI kernel. Products and sums are exact in i32 (wrapping,
//! with k bounded by `view`), so the results are the reference's bits.
//!
//! The micro-tile is 32 × 32: four C tiles (2 × 2 of 16 × 16 i32), two A
//! tiles (16 x rows × 64 codes each) and two B tiles, all 8 registers. The k
//! step is 64 codes: panels are padded to it (x rows already are).
//!
//! Linux enables the tile data state per process only on request
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`); without it the
//! first tile instruction faults, so the set is offered only once the
//! request has succeeded. The tile intrinsics are not stable Rust, so the
//! instructions are `asm!`; nothing else in the crate uses tile registers
//! (no function enables the AMX target features), so they keep their
//! contents between the asm blocks of one kernel call.

use std::arch::asm;
use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::packed_avx512::{lanes, Avx512Vnni};
use crate::operands::{I8Panel, I8Rows, Out, QuantRows, Tile};
use crate::packed::{Kind, LowbitTile, PackedSimd};
use crate::schemes::ActQuant;

/// Whether this CPU has AMX-TILE and AMX-INT8 and the OS lets this process
/// use the tile state (asked once per process).
pub(crate) fn usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| cpu_has_amx_int8() && tile_state_permitted())
}

fn cpu_has_amx_int8() -> bool {
    // SAFETY: CPUID exists on every x86-64 CPU; leaf 7 is read only when the
    // CPU reports it. (Safe functions in recent Rust, hence the allow.)
    #[allow(unused_unsafe)]
    let (max_leaf, edx) = unsafe { (__cpuid(0).eax, __cpuid_count(7, 0).edx) };
    // CPUID.(EAX=7, ECX=0):EDX bit 24 = AMX-TILE, bit 25 = AMX-INT8.
    max_leaf >= 7 && (edx >> 24) & 0b11 == 0b11
}

/// Asks Linux for the AMX tile data state; false if the kernel refuses or
/// predates the request (or the OS is not Linux).
fn tile_state_permitted() -> bool {
    #[cfg(target_os = "linux")]
    {
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let ret: i64;
        // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM, 18) only widens the
        // extended states this process may use; it reads and writes no user
        // memory and returns 0 or −errno in rax. `syscall` clobbers rcx and
        // r11, declared below.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret == 0
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// AVX-512 VNNI with the AMX int8 GEMM micro-kernel (its own kernel set).
pub(crate) struct Avx512Amx;

type Vnni = Avx512Vnni;

/// Everything but the int8 GEMM micro-kernel is the VNNI set's.
impl PackedSimd for Avx512Amx {
    type Float = <Vnni as PackedSimd>::Float;
    const DOT_ROWS: usize = Vnni::DOT_ROWS;
    unsafe fn f16_to_f32(src: *const u8, n: usize, dst: *mut f32) {
        Vnni::f16_to_f32(src, n, dst)
    }
    unsafe fn group_major(
        src: crate::packed::lowbit::ParamRows,
        cols: usize,
        ng: usize,
        nc: usize,
        dst: *mut f32,
    ) {
        Vnni::group_major(src, cols, ng, nc, dst)
    }
    unsafe fn dq_absmax(codes: *const u8, n: usize, min: f32, step: f32, dst: *mut f32) {
        Vnni::dq_absmax(codes, n, min, step, dst)
    }
    unsafe fn decode_row(
        kind: Kind,
        codes: *const u8,
        scales: *const f32,
        zeros: *const f32,
        group: usize,
        k: usize,
        dst: *mut f32,
    ) {
        Vnni::decode_row(kind, codes, scales, zeros, group, k, dst)
    }
    unsafe fn dot_tile(
        kind: Kind,
        tile: Tile,
        k: usize,
        group: usize,
        x: crate::operands::XRows,
        w: crate::operands::PackedRows,
        bias: *const f32,
        out: Out,
    ) {
        Vnni::dot_tile(kind, tile, k, group, x, w, bias, out)
    }
    unsafe fn dot_i8(rows: usize, k: usize, x: I8Rows, w: [*const u8; 4], out: &mut [[i32; 4]; 4]) {
        Vnni::dot_i8(rows, k, x, w, out)
    }
    const I8_WIDE_ROWS: usize = Vnni::I8_WIDE_ROWS;
    unsafe fn dot_i8_wide(
        rows: usize,
        k: usize,
        x: I8Rows,
        w: [*const u8; 4],
        out: &mut [[i32; 4]; 8],
    ) {
        Vnni::dot_i8_wide(rows, k, x, w, out)
    }
    fn lowbit_shape(kind: Kind, group: usize) -> (usize, crate::packed::quant::XOrder) {
        Vnni::lowbit_shape(kind, group)
    }
    unsafe fn dot_lowbit(kind: Kind, tile: Tile, k: usize, group: usize, t: LowbitTile, out: Out) {
        Vnni::dot_lowbit(kind, tile, k, group, t, out)
    }
    const LB_NR: usize = Vnni::LB_NR;
    const LB_MR: usize = Vnni::LB_MR;
    unsafe fn gemm_lowbit(
        nf4: bool,
        tile: Tile,
        kp: usize,
        group: usize,
        t: LowbitTile,
        panel: *const u8,
        out: Out,
    ) {
        Vnni::gemm_lowbit(nf4, tile, kp, group, t, panel, out)
    }
    unsafe fn quantize_row(x: *const f32, k: usize, act: ActQuant, dst: *mut i8) -> (f32, i32) {
        Vnni::quantize_row(x, k, act, dst)
    }

    const I8_NR: usize = NR;
    const I8_MR: usize = MR;
    const I8_K_STEP: usize = 64;
    unsafe fn gemm_i8(tile: Tile, k4: usize, x: QuantRows, b: I8Panel, out: Out) {
        gemm_i8_amx(tile, k4, x, b, out)
    }
}

const MR: usize = 32;
const NR: usize = 32;
/// Bytes per panel row (4 codes of each of the NR columns): the B tiles' stride.
const PANEL_ROW: usize = 4 * NR;

/// An `ldtilecfg` operand (palette 1): per tile its bytes per row (u16 at
/// 16 + 2t) and rows (u8 at 48 + t); a tile with 0 rows is unconfigured.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    /// Tiles for a micro-tile of `rows` x rows (1..=32): C at tmm0..3 (row
    /// half i, column half j at 2i + j), A halves at tmm4/5, B halves at
    /// tmm6/7. The second row half's tiles exist only when rows > 16.
    fn for_rows(rows: usize) -> TileConfig {
        let mut c = [0u8; 64];
        c[0] = 1;
        let mut set = |t: usize, r: usize| {
            if r > 0 {
                c[16 + 2 * t] = 64;
                c[48 + t] = r as u8;
            }
        };
        for (i, r) in [rows.min(16), rows.saturating_sub(16)]
            .into_iter()
            .enumerate()
        {
            set(2 * i, r);
            set(2 * i + 1, r);
            set(4 + i, r);
        }
        set(6, 16);
        set(7, 16);
        TileConfig(c)
    }
}

/// Makes `cfg` the tile configuration unless it already is: `ldtilecfg`
/// costs about a tenth of a 32 × 32 × 384 micro-tile, `sttilecfg` little, and
/// between two calls on a thread the configuration stays (it is per-thread
/// state, saved and restored by the OS). Reading it back rather than
/// trusting a flag keeps this right if other code on the thread configures
/// tiles in between. The tiles are left in use, not released: their 8 KB
/// join the thread's saved state until it ends.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn configure(cfg: &TileConfig) {
    let mut current = TileConfig([0; 64]);
    // SAFETY: the tile state is enabled (`usable()`); sttilecfg writes the
    // 64 bytes of `current` (all zero if tiles are unconfigured), ldtilecfg
    // reads the 64 of `cfg`, a valid palette-1 configuration.
    asm!("sttilecfg [{}]", in(reg) current.0.as_mut_ptr(), options(nostack));
    if current.0 != cfg.0 {
        asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
    }
}

/// The C tiles, stored for the rescale: 32 rows of 32 i32 (128-byte rows).
#[repr(C, align(64))]
struct Dots([[i32; NR]; MR]);

/// The int8 GEMM micro-kernel (`PackedSimd::gemm_i8` with MR = NR = 32 and
/// `k4` a multiple of 64): per 64 codes of k, two A and two B tile loads and
/// four `tdpbsud`; then the dots are corrected by `128·Σx` and rescaled with
/// the reference's expression, as the VNNI kernel does.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn gemm_i8_amx(tile: Tile, k4: usize, x: QuantRows, b: I8Panel, out: Out) {
    let (rows, cols) = (tile.rows, tile.cols);
    debug_assert!((1..=MR).contains(&rows) && (1..=NR).contains(&cols));
    debug_assert!(k4.is_multiple_of(64));
    configure(&TileConfig::for_rows(rows));
    let mut dots = Dots([[0; NR]; MR]);
    let ldx = x.row_stride;
    let x0 = x.codes;
    let panel = b.codes;
    // SAFETY (every asm block): `usable()` held before this set was handed
    // out, so the tile state is enabled; the tiles used are the ones
    // configured above for `rows`. A loads read x rows 0..rows (16 per tile), bytes
    // 64s..64s + 64 < k4 of each (rows hold kq ≥ k4 codes); B loads read 16
    // panel rows of 128 bytes at 2048·s, inside the `k4/4 × 128`-byte panel;
    // stores write `dots`, 32 × 128 bytes.
    if rows > 16 {
        let x1 = x0.add(16 * ldx);
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem),
        );
        for s in 0..k4 / 64 {
            asm!(
                "tileloadd tmm4, [{a0} + {lda}*1]",
                "tileloadd tmm5, [{a1} + {lda}*1]",
                "tileloadd tmm6, [{b} + {ldb}*1]",
                "tileloadd tmm7, [{b} + {ldb}*1 + 64]",
                "tdpbsud tmm0, tmm4, tmm6",
                "tdpbsud tmm1, tmm4, tmm7",
                "tdpbsud tmm2, tmm5, tmm6",
                "tdpbsud tmm3, tmm5, tmm7",
                a0 = in(reg) x0.add(64 * s),
                a1 = in(reg) x1.add(64 * s),
                lda = in(reg) ldx,
                b = in(reg) panel.add(16 * PANEL_ROW * s),
                ldb = in(reg) PANEL_ROW,
                options(nostack, readonly),
            );
        }
        let c = dots.0.as_mut_ptr().cast::<u8>();
        asm!(
            "tilestored [{c0} + {ldc}*1], tmm0",
            "tilestored [{c0} + {ldc}*1 + 64], tmm1",
            "tilestored [{c1} + {ldc}*1], tmm2",
            "tilestored [{c1} + {ldc}*1 + 64], tmm3",
            c0 = in(reg) c,
            c1 = in(reg) c.add(16 * PANEL_ROW),
            ldc = in(reg) PANEL_ROW,
            options(nostack),
        );
    } else {
        asm!("tilezero tmm0", "tilezero tmm1", options(nostack, nomem),);
        for s in 0..k4 / 64 {
            asm!(
                "tileloadd tmm4, [{a0} + {lda}*1]",
                "tileloadd tmm6, [{b} + {ldb}*1]",
                "tileloadd tmm7, [{b} + {ldb}*1 + 64]",
                "tdpbsud tmm0, tmm4, tmm6",
                "tdpbsud tmm1, tmm4, tmm7",
                a0 = in(reg) x0.add(64 * s),
                lda = in(reg) ldx,
                b = in(reg) panel.add(16 * PANEL_ROW * s),
                ldb = in(reg) PANEL_ROW,
                options(nostack, readonly),
            );
        }
        let c = dots.0.as_mut_ptr().cast::<u8>();
        asm!(
            "tilestored [{c0} + {ldc}*1], tmm0",
            "tilestored [{c0} + {ldc}*1 + 64], tmm1",
            c0 = in(reg) c,
            ldc = in(reg) PANEL_ROW,
            options(nostack),
        );
    }
    let sws: [__m512; 2] = std::array::from_fn(|v| _mm512_loadu_ps(b.scales.add(16 * v)));
    let bs: [__m512; 2] = std::array::from_fn(|v| _mm512_loadu_ps(b.bias.add(16 * v)));
    for r in 0..rows {
        let corr = _mm512_set1_epi32((*x.sums.add(r)).wrapping_mul(128));
        let s = _mm512_set1_ps(*x.scales.add(r));
        for v in 0..2 {
            if 16 * v >= cols {
                break;
            }
            let d = _mm512_load_si512(dots.0[r].as_ptr().add(16 * v).cast());
            let dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(d, corr));
            // (s_x · s_w) · dot + b, each rounded: no FMA, as the reference.
            let o = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(s, sws[v]), dot), bs[v]);
            _mm512_mask_storeu_ps(
                out.ptr.add(r * out.row_stride + 16 * v),
                lanes(cols - 16 * v),
                o,
            );
        }
    }
}

/// The `amx` set's int8 ceiling probe: `iters` rounds of four independent
/// 16 × 16 × 64 `tdpbsud` (C tiles 0–3 from A tiles 4/5 and B tiles 6/7,
/// the micro-kernel's shape), 131 072 int8 ops per round; returns a word of
/// the result so the work cannot be dropped.
pub(crate) fn probe_tdpbsud(iters: u64) -> u64 {
    // SAFETY: reachable only through AMX_TABLE, handed out once `usable()`
    // held on a CPU with the features `tdpbsud_rounds` enables.
    unsafe { tdpbsud_rounds(iters) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn tdpbsud_rounds(iters: u64) -> u64 {
    configure(&TileConfig::for_rows(MR));
    let operands = Dots([[0x0101_0101; NR]; MR]);
    let src = std::hint::black_box(operands.0.as_ptr().cast::<u8>());
    let mut dots = Dots([[0; NR]; MR]);
    // SAFETY: the tiles are configured above for 32 rows; every load reads
    // 16 rows of 64 bytes at a 128-byte stride inside `operands` (4 KiB),
    // the store writes 16 rows of 64 bytes inside `dots`.
    asm!(
        "tileloadd tmm4, [{a} + {ld}*1]",
        "tileloadd tmm5, [{a} + {ld}*1 + 64]",
        "tileloadd tmm6, [{b} + {ld}*1]",
        "tileloadd tmm7, [{b} + {ld}*1 + 64]",
        "tilezero tmm0",
        "tilezero tmm1",
        "tilezero tmm2",
        "tilezero tmm3",
        a = in(reg) src,
        b = in(reg) src.add(16 * PANEL_ROW),
        ld = in(reg) PANEL_ROW,
        options(nostack, readonly),
    );
    for _ in 0..iters {
        asm!(
            "tdpbsud tmm0, tmm4, tmm6",
            "tdpbsud tmm1, tmm4, tmm7",
            "tdpbsud tmm2, tmm5, tmm6",
            "tdpbsud tmm3, tmm5, tmm7",
            options(nostack, nomem),
        );
    }
    let c = dots.0.as_mut_ptr().cast::<u8>();
    asm!(
        "tilestored [{c} + {ld}*1], tmm0",
        c = in(reg) c,
        ld = in(reg) PANEL_ROW,
        options(nostack),
    );
    dots.0[0][0] as u32 as u64
}
