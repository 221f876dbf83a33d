// y = x · wᵀ + b for many rows (encoder, prompts), weights dequantized in registers
// (weights.wgsl). Epilogue and bindings as matvec.wgsl (src/gpu/shaders.rs LINEAR).
//
// Shaped for lavapipe as much as for GPUs: a load whose address is the same in every
// invocation is one scalar load there, any other a per-lane gather, so the shared x
// tile is read at uniform addresses and each weight is gathered once per tile
// (about 3× faster there than a 64 × 64 tile of 4 × 4 blocks staging both operands).

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

// A workgroup of WGM invocations computes RT rows × 4·WGM columns (src/gpu/shaders.rs
// MATMUL_THREADS, MATMUL_ROWS: 32 × 128; RT is a generated const). The x tile (RT rows
// × KT2 = 32 k) is staged in workgroup memory and read by every invocation at the
// same address (a broadcast); invocation t owns weight rows col0 + t + WGM·j (j < 4),
// unpacks each packed weight once per tile straight into registers, and keeps its
// RT × 4 block of sums in registers: each x read feeds 16 multiply-adds.
const KT2: u32 = 32u;
override WGM: u32;
var<workgroup> XT: array<vec4<f32>, KT2 / 4u * RT>; // [KT2 / 4][RT]: x[row0 + r][k0 + 4q ..]

@compute @workgroup_size(WGM)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let col0 = wid.x * 4u * WGM;
    let row0 = wid.y * RT;
    // Columns past n compute column n − 1 and do not store: barriers stay uniform.
    let w = min(vec4<u32>(col0 + t) + vec4<u32>(0u, 1u, 2u, 3u) * WGM, vec4<u32>(P.n - 1u));
    var acc: array<vec4<f32>, RT>; // [row][column j]
    for (var k0 = 0u; k0 < P.w.k; k0 += KT2) {
        for (var e = t; e < RT * KT2 / 4u; e += WGM) {
            let r = e % RT;
            let c = k0 + 4u * (e / RT);
            var xv = vec4<f32>(0.0);
            if row0 + r < P.m {
                let inside = (vec4<u32>(c) + vec4<u32>(0u, 1u, 2u, 3u)) < vec4<u32>(P.w.k);
                let o = P.x_off + (row0 + r) * P.x_stride + c;
                xv = select(vec4<f32>(0.0), vec4<f32>(X[o], X[o + 1u], X[o + 2u], X[o + 3u]), inside);
            }
            XT[e] = xv;
        }
        workgroupBarrier();
        for (var q = 0u; q < KT2 / 4u; q++) {
            let c = k0 + 4u * q;
            let w0 = weight4(w.x, c);
            let w1 = weight4(w.y, c);
            let w2 = weight4(w.z, c);
            let w3 = weight4(w.w, c);
            for (var r = 0u; r < RT; r++) {
                let xv = XT[q * RT + r];
                acc[r] += vec4<f32>(dot(xv, w0), dot(xv, w1), dot(xv, w2), dot(xv, w3));
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < RT; r++) {
        let row = row0 + r;
        if row >= P.m {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + t + WGM * j;
            if col < P.n {
                var y = acc[r][j];
                if (P.flags & 1u) != 0u {
                    y += B[col];
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
    }
}
