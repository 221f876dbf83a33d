// Scaled dot-product attention, every head: one workgroup per (query row, head).
// Scores of the visible keys go to workgroup memory, softmax with the maximum
// subtracted, then each thread owns output columns of the head. (Simple, and slow
// for the encoder's 1500 × 1500: a key/value-tiled kernel sharing loads between
// queries is the next step.)
//
// Bindings (src/gpu/shaders.rs ATTENTION):
//   0 uniform P
//   1 Q  f32[]  query i, head h at q_off + i·q_stride + h·head_dim
//   2 KV f32[]  key j at k_off + j·kv_stride + h·head_dim, value j at v_off + …
//   3 O  f32[]  output at o_off + i·o_stride + h·head_dim

struct AttentionParams {
    n_q: u32,
    n_kv: u32,
    n_head: u32,
    head_dim: u32,
    q_off: u32,
    q_stride: u32,
    k_off: u32,
    v_off: u32,
    kv_stride: u32,
    o_off: u32,
    o_stride: u32,
    causal: u32,        // 1: query i sees keys 0 ..= i + causal_offset
    causal_offset: u32,
    scale: f32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> P: AttentionParams;
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> KV: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;

const WG: u32 = 64u;
// Longest key sequence and head the workgroup arrays hold (checked on the Rust side).
const MAX_KV: u32 = 3072u;
const MAX_HEAD_DIM: u32 = 256u;

var<workgroup> qs: array<f32, 256>;
var<workgroup> scores: array<f32, 3072>;
var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let i = wid.x;
    let h = wid.y;
    let hd = P.head_dim;
    var visible = P.n_kv;
    if P.causal != 0u {
        visible = min(i + P.causal_offset + 1u, P.n_kv);
    }
    let q0 = P.q_off + i * P.q_stride + h * hd;
    for (var c = t; c < hd; c += WG) {
        qs[c] = Q[q0 + c] * P.scale;
    }
    workgroupBarrier();

    var m = -3.4e38;
    for (var j = t; j < visible; j += WG) {
        let k0 = P.k_off + j * P.kv_stride + h * hd;
        var s = 0.0;
        for (var c = 0u; c < hd; c++) {
            s += qs[c] * KV[k0 + c];
        }
        scores[j] = s;
        m = max(m, s);
    }
    red[t] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if t < s {
            red[t] = max(red[t], red[t + s]);
        }
        workgroupBarrier();
    }
    let mx = red[0];
    workgroupBarrier();
    var sum = 0.0;
    for (var j = t; j < visible; j += WG) {
        let e = exp(scores[j] - mx);
        scores[j] = e;
        sum += e;
    }
    red[t] = sum;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if t < s {
            red[t] += red[t + s];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / red[0];
    for (var c = t; c < hd; c += WG) {
        var acc = 0.0;
        var v = P.v_off + h * hd + c;
        for (var j = 0u; j < visible; j++) {
            acc += scores[j] * KV[v];
            v += P.kv_stride;
        }
        O[P.o_off + i * P.o_stride + h * hd + c] = acc * inv;
    }
}

