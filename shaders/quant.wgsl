// x rows to int8 codes for int8.wgsl, one workgroup per row, exactly as the CPU's
// `quantize_activations`: Dynamic (mode 0) s_x = absmax / 127, codes
// round(x · (127 / absmax)), all zero for a zero row; Static (mode 1) s_x = scale,
// codes round(x · (1 / scale)) clamped to ±127. round() is half to even, as on the CPU.
//
// Bindings (src/gpu/shaders.rs QUANT): 0 uniform P, 1 X f32[] (row i at x_off + i·x_stride),
// 2 XQ u32[] (codes, 4 per word, row i at i·kw), 3 XS f32[] (row scales).

struct QuantParams {
    k: u32,
    kw: u32,
    rows: u32,
    x_off: u32,
    x_stride: u32,
    mode: u32,
    scale: f32,
    pad0: u32,
}

@group(0) @binding(0) var<uniform> P: QuantParams;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> XQ: array<u32>;
@group(0) @binding(3) var<storage, read_write> XS: array<f32>;

var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn quantize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) t: u32) {
    let row = flat_group(wid, nwg);
    if row >= P.rows {
        return;
    }
    let x0 = P.x_off + row * P.x_stride;
    var sx = P.scale;
    var inv = 1.0 / P.scale;
    if P.mode == 0u {
        var a = 0.0;
        for (var c = t; c < P.k; c += 64u) {
            a = max(a, abs(X[x0 + c]));
        }
        red[t] = a;
        workgroupBarrier();
        for (var s = 32u; s > 0u; s >>= 1u) {
            if t < s {
                red[t] = max(red[t], red[t + s]);
            }
            workgroupBarrier();
        }
        a = red[0];
        sx = a / 127.0;
        inv = 127.0 / a;
        if a == 0.0 {
            sx = 0.0;
            inv = 0.0;
        }
    }
    if t == 0u {
        XS[row] = sx;
    }
    for (var q = t; q < P.kw; q += 64u) {
        var word = 0u;
        for (var e = 0u; e < 4u; e++) {
            let c = 4u * q + e;
            if c < P.k {
                let v = clamp(round(X[x0 + c] * inv), -127.0, 127.0);
                word |= (bitcast<u32>(i32(v)) & 0xffu) << (8u * e);
            }
        }
        XQ[row * P.kw + q] = word;
    }
}
