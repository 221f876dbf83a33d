// y[i][r] = x[i] · w[r] + b[r] for a few rows i (decoding): a workgroup takes 16
// weight rows, 4 threads per row splitting k, each weight element read once for
// every x row.
// Epilogue (flags): bit 0 bias, bit 1 GELU, bit 2 accumulate (y += result: residuals).
//
// Bindings (src/gpu/shaders.rs LINEAR):
//   0 uniform P
//   1 W  u32[]  the weight tensor's bytes, n × k packed (weights.wgsl)
//   2 X  f32[]  x row i at x_off + i·x_stride, k floats
//   3 B  f32[]  bias, n floats (a dummy when flags bit 0 is clear)
//   4 Y  f32[]  y row i at y_off + i·y_stride, n floats

struct LinearParams {
    w: WeightLayout,
    m: u32,
    n: u32,
    x_off: u32,
    x_stride: u32,
    y_off: u32,
    y_stride: u32,
    flags: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> P: LinearParams;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;

// Threads per weight row, and weight rows per workgroup (src/gpu/shaders.rs
// MATVEC_ROWS); the workgroup has LANES · ROWS invocations. MAXM, the most x rows per
// call (the Rust side uses matmul above it: MATVEC_MAX_M), is a generated const.
const LANES: u32 = 4u;
override ROWS: u32;

var<workgroup> partial: array<f32, MAXM * LANES * ROWS>; // [x row][invocation]

fn epilogue(i: u32, col: u32, v: f32) {
    var y = v;
    if (P.flags & 1u) != 0u {
        y += B[col];
    }
    if (P.flags & 2u) != 0u {
        y = gelu(y);
    }
    let o = P.y_off + i * P.y_stride + col;
    if (P.flags & 4u) != 0u {
        y += Y[o];
    }
    Y[o] = y;
}

@compute @workgroup_size(LANES * ROWS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) t: u32) {
    let lane = t % LANES;
    let r = flat_group(wid, nwg) * ROWS + t / LANES;
    // Rows past n compute row n − 1 and do not store: the barrier stays uniform.
    let rw = min(r, P.n - 1u);
    var acc: array<f32, MAXM>;
    for (var c = lane * 4u; c < P.w.k; c += LANES * 4u) {
        let w = weight4(rw, c);
        let inside = (vec4<u32>(c) + vec4<u32>(0u, 1u, 2u, 3u)) < vec4<u32>(P.w.k);
        for (var i = 0u; i < P.m; i++) {
            let o = P.x_off + i * P.x_stride + c;
            let x = select(vec4<f32>(0.0), vec4<f32>(X[o], X[o + 1u], X[o + 2u], X[o + 3u]), inside);
            acc[i] += dot(w, x);
        }
    }
    for (var i = 0u; i < P.m; i++) {
        partial[i * LANES * ROWS + t] = acc[i];
    }
    workgroupBarrier();
    if lane == 0u && r < P.n {
        for (var i = 0u; i < P.m; i++) {
            let p = i * LANES * ROWS + t;
            epilogue(i, r, (partial[p] + partial[p + 1u]) + (partial[p + 2u] + partial[p + 3u]));
        }
    }
}
