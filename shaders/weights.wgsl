// Prepended to every shader that reads weights (matvec, matmul, embedding, int8): the packed
// layouts of kernels/src/schemes (docs/FORMAT.md), unpacked in registers.
//
// The including shader declares `W: array<u32>` (one tensor's bytes, all planes) and a
// uniform `P` with a member `w: WeightLayout`. `SCHEME` is the file's element-type code
// (a pipeline constant of every pipeline: src/gpu/ops.rs).

override SCHEME: u32;

const S_F32: u32 = 0u;
const S_F16: u32 = 1u;
const S_INT8_ROW: u32 = 2u;
const S_INT8_TENSOR: u32 = 3u;
const S_INT4_SYM: u32 = 4u;
const S_INT4: u32 = 5u;
const S_NF4: u32 = 6u;
const S_NF4_DQ: u32 = 7u;
const S_INT3: u32 = 8u;

struct WeightLayout {
    k: u32,          // inputs per row
    group: u32,      // elements per group along k (0: int8, f16, f32)
    ng: u32,         // groups per row
    row_bytes: u32,  // bytes per row of plane 0
    p1: u32,         // byte offset of plane 1 (scales / absmax)
    p2: u32,         // byte offset of plane 2 (zero-points / double-quant constants)
    pad0: u32,
    pad1: u32,
}

// bitsandbytes' NormalFloat-4 values (kernels/src/schemes/mod.rs NF4).
var<private> NF4_TABLE: array<f32, 16> = array<f32, 16>(
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0);

// Four bytes starting at any byte offset (the buffer has 4 bytes of slack at its end).
fn word_at(off: u32) -> u32 {
    let s = (off & 3u) * 8u;
    let lo = W[off >> 2u];
    if s == 0u {
        return lo;
    }
    return (lo >> s) | (W[(off >> 2u) + 1u] << (32u - s));
}

fn byte_at(off: u32) -> u32 {
    return (W[off >> 2u] >> ((off & 3u) * 8u)) & 0xffu;
}

// Element `i` of an f32 / f16 plane starting at byte `base` (a multiple of 256).
fn f32_at(base: u32, i: u32) -> f32 {
    return bitcast<f32>(W[(base >> 2u) + i]);
}
fn f16_at(base: u32, i: u32) -> f32 {
    let v = unpack2x16float(W[(base >> 2u) + (i >> 1u)]);
    return select(v.x, v.y, (i & 1u) == 1u);
}

// The four i8 of a word, sign-extended.
fn i8x4(word: u32) -> vec4<f32> {
    let w = bitcast<i32>(word);
    return vec4<f32>(vec4<i32>(w << 24u, w << 16u, w << 8u, w) >> vec4<u32>(24u));
}

fn nf4(code: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(NF4_TABLE[code.x], NF4_TABLE[code.y], NF4_TABLE[code.z], NF4_TABLE[code.w]);
}

// Weights w[r][c .. c+4] for c a multiple of 4; elements at or past k read as 0.
fn weight4(r: u32, c: u32) -> vec4<f32> {
    let k = P.w.k;
    var v = vec4<f32>(0.0);
    switch SCHEME {
        case 0u: {
            let e = r * k + c;
            v = vec4<f32>(bitcast<f32>(W[e]), bitcast<f32>(W[e + 1u]),
                          bitcast<f32>(W[e + 2u]), bitcast<f32>(W[e + 3u]));
        }
        case 1u: {
            let e = r * k + c;
            let i = e >> 1u;
            let a = unpack2x16float(W[i]);
            let b = unpack2x16float(W[i + 1u]);
            if (e & 1u) == 0u {
                v = vec4<f32>(a, b);
            } else {
                v = vec4<f32>(a.y, b, unpack2x16float(W[i + 2u]).x);
            }
        }
        case 2u, 3u: {
            let s = f32_at(P.w.p1, select(r, 0u, SCHEME == S_INT8_TENSOR));
            v = s * i8x4(word_at(r * k + c));
        }
        case 4u, 5u, 6u, 7u: {
            // Block of 32: byte j holds element j (low nibble) and 16 + j (high nibble).
            let q = c & 31u;
            let word = W[(r * P.w.row_bytes + (c >> 5u) * 16u + (q & 15u)) >> 2u];
            let sh = select(0u, 4u, q >= 16u);
            let code = (vec4<u32>(word) >> vec4<u32>(sh, sh + 8u, sh + 16u, sh + 24u)) & vec4<u32>(0xfu);
            let g = r * P.w.ng + c / P.w.group;
            if SCHEME == S_INT4_SYM {
                v = f16_at(P.w.p1, g) * (vec4<f32>(code) - 8.0);
            } else if SCHEME == S_INT4 {
                v = f16_at(P.w.p1, g) * (vec4<f32>(code) - f16_at(P.w.p2, g));
            } else if SCHEME == S_NF4 {
                v = f32_at(P.w.p1, g) * nf4(code);
            } else {
                let chunk = g >> 8u;
                let absmax = f32_at(P.w.p2, 2u * chunk) + f32(byte_at(P.w.p1 + g)) * f32_at(P.w.p2, 2u * chunk + 1u);
                v = absmax * nf4(code);
            }
        }
        case 8u: {
            // Block of 32 in 12 bytes: element 8i + j has its low 2 bits at bits 2i of
            // byte j, its high bit at bit (8i + j) / 4 of byte 8 + j % 4.
            let q = c & 31u;
            let i = q >> 3u;
            let j0 = q & 7u;
            let base = r * P.w.row_bytes + (c >> 5u) * 12u;
            let lo = W[(base + j0) >> 2u];
            let hi = W[(base + 8u) >> 2u];
            let sl = 2u * i;
            let sh = 2u * i + (j0 >> 2u);
            let low = (vec4<u32>(lo) >> vec4<u32>(sl, sl + 8u, sl + 16u, sl + 24u)) & vec4<u32>(3u);
            let high = (vec4<u32>(hi) >> vec4<u32>(sh, sh + 8u, sh + 16u, sh + 24u)) & vec4<u32>(1u);
            let g = r * P.w.ng + c / P.w.group;
            v = f16_at(P.w.p1, g) * (vec4<f32>(low | (high << vec4<u32>(2u))) - f16_at(P.w.p2, g));
        }
        default: {}
    }
    let inside = (vec4<u32>(c) + vec4<u32>(0u, 1u, 2u, 3u)) < vec4<u32>(k);
    return select(vec4<f32>(0.0), v, inside);
}

// NF4 as int8 for the low-bit × int8 dot (kernels/src/schemes NF4_I8: round(127 · NF4)).
var<private> NF4_I8: array<i32, 16> = array<i32, 16>(
    -127, -88, -67, -50, -36, -23, -12, 0, 10, 20, 31, 43, 56, 71, 92, 127);

// Integer codes of w[r][c .. c+4] (c a multiple of 4) for the low-bit × int8 dot: the
// stored code (int4, int3) or NF4_I8[code] (nf4, nf4-dq); the padding past k decodes
// whatever is stored there and meets zero x codes.
fn codes4(r: u32, c: u32) -> vec4<i32> {
    let q = c & 31u;
    switch SCHEME {
        case 4u, 5u, 6u, 7u: {
            let word = W[(r * P.w.row_bytes + (c >> 5u) * 16u + (q & 15u)) >> 2u];
            let sh = select(0u, 4u, q >= 16u);
            let code = (vec4<u32>(word) >> vec4<u32>(sh, sh + 8u, sh + 16u, sh + 24u)) & vec4<u32>(0xfu);
            if SCHEME == S_NF4 || SCHEME == S_NF4_DQ {
                return vec4<i32>(NF4_I8[code.x], NF4_I8[code.y], NF4_I8[code.z], NF4_I8[code.w]);
            }
            return vec4<i32>(code);
        }
        case 8u: {
            let i = q >> 3u;
            let j0 = q & 7u;
            let base = r * P.w.row_bytes + (c >> 5u) * 12u;
            let lo = W[(base + j0) >> 2u];
            let hi = W[(base + 8u) >> 2u];
            let sl = 2u * i;
            let sh = 2u * i + (j0 >> 2u);
            let low = (vec4<u32>(lo) >> vec4<u32>(sl, sl + 8u, sl + 16u, sl + 24u)) & vec4<u32>(3u);
            let high = (vec4<u32>(hi) >> vec4<u32>(sh, sh + 8u, sh + 16u, sh + 24u)) & vec4<u32>(1u);
            return vec4<i32>(low | (high << vec4<u32>(2u)));
        }
        default: {
            return vec4<i32>(0);
        }
    }
}

// (s_g, z_g) of group g of row r for the low-bit × int8 dot (schemes::lowbit_params):
// int4-sym (scale, 8); int4-asym, int3 (scale, zero); nf4, nf4-dq (absmax / 127, 0).
fn group_params(r: u32, g: u32) -> vec2<f32> {
    let i = r * P.w.ng + g;
    switch SCHEME {
        case 4u: {
            return vec2<f32>(f16_at(P.w.p1, i), 8.0);
        }
        case 5u, 8u: {
            return vec2<f32>(f16_at(P.w.p1, i), f16_at(P.w.p2, i));
        }
        case 6u: {
            return vec2<f32>(f32_at(P.w.p1, i) / 127.0, 0.0);
        }
        case 7u: {
            let chunk = i >> 8u;
            let absmax = f32_at(P.w.p2, 2u * chunk) + f32(byte_at(P.w.p1 + i)) * f32_at(P.w.p2, 2u * chunk + 1u);
            return vec2<f32>(absmax / 127.0, 0.0);
        }
        default: {
            return vec2<f32>(0.0);
        }
    }
}
