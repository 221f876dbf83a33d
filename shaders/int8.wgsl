// int8 weights × int8 activations (`--activations dynamic` / `static`), as the CPU's
// ActQuant::Dynamic / Static: x rows quantized on the device (quant.wgsl), then
// y = bias + (s_x · s_w) · Σ q · code with the sum exact in i32 (`main`); and 4- / 3-bit
// weights × int8 activations (`lowbit`), the reference's order (kernels/src/schemes/
// reference.rs): per group exact i32 d_g = Σ q · u and sx_g = Σ q, then in f32
// acc = acc + s_g · (d_g − z_g · sx_g) group by group, y = s_x · acc + bias.
//
// Bindings (src/gpu/shaders.rs INT8): 0 uniform P, 1 W u32[] (the int8 tensor, weights.wgsl),
// 2 XQ u32[] (x codes, 4 per word, row i at i·kw words, zero tail), 3 XS f32[] (x scales),
// 4 B f32[] (bias), 5 Y f32[] (row i at y_off + i·y_stride).
// The codes and scales come from quant.wgsl.

// 1: dot4I8Packed (WGSL packed_4x8_integer_dot_product); 0: unpacked i32 dot.
override DOT4: u32;
// Weight rows per workgroup, one per invocation (src/gpu/shaders.rs INT8_COLS).
override WG: u32;

struct Int8Params {
    w: WeightLayout,
    m: u32,
    n: u32,
    kw: u32,
    y_off: u32,
    y_stride: u32,
    flags: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Int8Params;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read> XQ: array<u32>;
@group(0) @binding(3) var<storage, read> XS: array<f32>;
@group(0) @binding(4) var<storage, read> B: array<f32>;
@group(0) @binding(5) var<storage, read_write> Y: array<f32>;

fn sext4(w: u32) -> vec4<i32> {
    let s = bitcast<i32>(w);
    return vec4<i32>(s << 24u, s << 16u, s << 8u, s) >> vec4<u32>(24u);
}

fn dot4(a: u32, b: u32) -> i32 {
    if DOT4 == 1u {
        return dot4I8Packed(a, b);
    }
    return dot(sext4(a), sext4(b));
}

// A workgroup: WG weight rows (one per invocation) × up to RQ x rows (RQ: a generated
// const, src/gpu/shaders.rs INT8_ROWS). x codes are read at the same address by every
// invocation; each weight word is read once per tile.

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let col = wid.x * WG + t;
    let c = min(col, P.n - 1u);
    let row0 = wid.y * RQ;
    let rows = min(RQ, P.m - row0);
    var acc: array<i32, RQ>;
    let wrow = c * P.w.k;
    for (var q = 0u; q < P.kw; q++) {
        let wq = word_at(wrow + 4u * q);
        // Bytes of the next row past k meet zero codes: the tail adds nothing.
        for (var r = 0u; r < rows; r++) {
            acc[r] += dot4(XQ[(row0 + r) * P.kw + q], wq);
        }
    }
    if col >= P.n {
        return;
    }
    let sw = f32_at(P.w.p1, select(col, 0u, SCHEME == S_INT8_TENSOR));
    for (var r = 0u; r < rows; r++) {
        let row = row0 + r;
        var y = (XS[row] * sw) * f32(acc[r]);
        if (P.flags & 1u) != 0u {
            y = B[col] + y;
        }
        if (P.flags & 2u) != 0u {
            y = gelu(y);
        }
        let o = P.y_off + row * P.y_stride + col;
        if (P.flags & 4u) != 0u {
            y += Y[o];
        }
        Y[o] = y;
    }
}

// Low-bit weights × int8 x codes: the tile of `main` (WG weight rows × up to RQ x rows),
// codes unpacked four at a time (weights.wgsl codes4), the float part per group.
@compute @workgroup_size(WG)
fn lowbit(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let col = wid.x * WG + t;
    let c = min(col, P.n - 1u);
    let row0 = wid.y * RQ;
    let rows = min(RQ, P.m - row0);
    var acc: array<f32, RQ>;
    let gw = P.w.group / 4u;
    for (var g = 0u; g < P.w.ng; g++) {
        var d: array<i32, RQ>;
        var sx: array<i32, RQ>;
        let q1 = min((g + 1u) * gw, P.kw);
        for (var q = g * gw; q < q1; q++) {
            let u = codes4(c, 4u * q);
            for (var r = 0u; r < rows; r++) {
                let x = sext4(XQ[(row0 + r) * P.kw + q]);
                d[r] += dot(x, u);
                sx[r] += (x.x + x.y) + (x.z + x.w);
            }
        }
        let sz = group_params(c, g);
        for (var r = 0u; r < rows; r++) {
            acc[r] = acc[r] + sz.x * (f32(d[r]) - sz.y * f32(sx[r]));
        }
    }
    if col >= P.n {
        return;
    }
    for (var r = 0u; r < rows; r++) {
        let row = row0 + r;
        var y = XS[row] * acc[r];
        if (P.flags & 1u) != 0u {
            y = y + B[col];
        }
        if (P.flags & 2u) != 0u {
            y = gelu(y);
        }
        let o = P.y_off + row * P.y_stride + col;
        if (P.flags & 4u) != 0u {
            y += Y[o];
        }
        Y[o] = y;
    }
}
