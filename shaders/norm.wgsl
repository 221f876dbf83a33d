// Layer norm (eps 1e-5) of `rows` rows of d floats: one workgroup per row, mean and
// variance in two passes over the row, in f32.
//
// Bindings (src/gpu/shaders.rs NORM):
//   0 uniform P
//   1 X f32[]  row i at x_off + i·x_stride
//   2 G f32[]  gamma, d floats
//   3 Bt f32[] beta, d floats
//   4 Y f32[]  row i at y_off + i·y_stride

struct NormParams {
    d: u32,
    rows: u32,
    x_off: u32,
    x_stride: u32,
    y_off: u32,
    y_stride: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> P: NormParams;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read> Bt: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;

const WG: u32 = 128u;
var<workgroup> red: array<f32, 128>;

fn row_sum(t: u32, v: f32) -> f32 {
    red[t] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if t < s {
            red[t] += red[t + s];
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) t: u32) {
    let row = flat_group(wid, nwg);
    if row >= P.rows {
        return;
    }
    let x0 = P.x_off + row * P.x_stride;
    var s = 0.0;
    for (var c = t; c < P.d; c += WG) {
        s += X[x0 + c];
    }
    let mean = row_sum(t, s) / f32(P.d);
    var q = 0.0;
    for (var c = t; c < P.d; c += WG) {
        let e = X[x0 + c] - mean;
        q += e * e;
    }
    let inv = inverseSqrt(row_sum(t, q) / f32(P.d) + 1e-5);
    let y0 = P.y_off + row * P.y_stride;
    for (var c = t; c < P.d; c += WG) {
        Y[y0 + c] = (X[x0 + c] - mean) * inv * G[c] + Bt[c];
    }
}
