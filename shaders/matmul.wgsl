// y = x · wᵀ + b for many rows (encoder, prompts): 64 × 64 output tiles, 256 threads
// each owning 4 × 4 outputs; k walked in steps of 16 with both tiles staged in
// workgroup memory, the weight tile dequantized as it is loaded (weights.wgsl).
// Epilogue and bindings as matvec.wgsl (src/gpu/shaders.rs LINEAR).

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

const TILE: u32 = 64u;
const KT: u32 = 16u;

var<workgroup> XS: array<f32, 1024>; // [KT][TILE] x rows
var<workgroup> WS: array<f32, 1024>; // [KT][TILE] weight rows (output columns)

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let col0 = wid.x * TILE;
    let row0 = wid.y * TILE;
    let tx = t % 16u;
    let ty = t / 16u;
    // Loader: row / weight row `lr` of the tile, k offsets lk .. lk + 4.
    let lr = t / 4u;
    let lk = (t % 4u) * 4u;
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < P.w.k; k0 += KT) {
        let c = k0 + lk;
        let inside = (vec4<u32>(c) + vec4<u32>(0u, 1u, 2u, 3u)) < vec4<u32>(P.w.k);
        var xv = vec4<f32>(0.0);
        if row0 + lr < P.m {
            let o = P.x_off + (row0 + lr) * P.x_stride + c;
            xv = select(vec4<f32>(0.0), vec4<f32>(X[o], X[o + 1u], X[o + 2u], X[o + 3u]), inside);
        }
        var wv = vec4<f32>(0.0);
        if col0 + lr < P.n {
            wv = weight4(col0 + lr, c);
        }
        for (var q = 0u; q < 4u; q++) {
            XS[(lk + q) * TILE + lr] = xv[q];
            WS[(lk + q) * TILE + lr] = wv[q];
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            let a = vec4<f32>(XS[kk * TILE + ty * 4u], XS[kk * TILE + ty * 4u + 1u],
                              XS[kk * TILE + ty * 4u + 2u], XS[kk * TILE + ty * 4u + 3u]);
            let b = vec4<f32>(WS[kk * TILE + tx * 4u], WS[kk * TILE + tx * 4u + 1u],
                              WS[kk * TILE + tx * 4u + 2u], WS[kk * TILE + tx * 4u + 3u]);
            acc[0] += a.x * b;
            acc[1] += a.y * b;
            acc[2] += a.z * b;
            acc[3] += a.w * b;
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + ty * 4u + i;
        if row >= P.m {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + tx * 4u + j;
            if col < P.n {
                var y = acc[i][j];
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
