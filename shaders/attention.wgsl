// Scaled dot-product attention, every head: one workgroup per (query row, head).
// Scores of the visible keys go to workgroup memory, softmax with the maximum
// subtracted, then each thread owns output columns of the head. (Simple, and slow
// for the encoder's 1500 × 1500: a key/value-tiled kernel sharing loads between
// queries is the next step.)
//
// Bindings (src/gpu/shaders.rs ATTENTION):
//   0 uniform P
//   1 Q  f32[]  query i, head h at q_off + i·q_stride + h·head_dim
//   2 KV kv_t[] key j at k_off + j·kv_stride + h·head_dim, value j at v_off + …
//               (kv_t: f32, or f16 in the attention_f16 family: src/gpu/shaders.rs)
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
@group(0) @binding(2) var<storage, read> KV: array<kv_t>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;

const WG: u32 = 64u;
// Longest key sequence and head the workgroup arrays hold (src/gpu/shaders.rs
// ATTENTION_MAX_KV, ATTENTION_MAX_HEAD_DIM: the Rust side uses `flash` or refuses the
// model beyond them).
override MAX_KV: u32;
override MAX_HEAD_DIM: u32;

var<workgroup> qs: array<f32, MAX_HEAD_DIM>;
var<workgroup> scores: array<f32, MAX_KV>;
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
            s += qs[c] * f32(KV[k0 + c]);
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
            acc += scores[j] * f32(KV[v]);
            v += P.kv_stride;
        }
        O[P.o_off + i * P.o_stride + h * hd + c] = acc * inv;
    }
}


// Key/value-tiled attention for many queries (encoder, prompts) with head_dim HD = 64
// (every Whisper model; a generated const: src/gpu/shaders.rs FLASH_HEAD_DIM): a
// workgroup takes QB queries of one head (FLASH_QUERIES), one per invocation, holding
// its query and output row in registers; keys and values stream through workgroup
// memory TK at a time, shared by all QB queries, with an online softmax (running
// maximum and sum, the output rescaled once per tile).
const HD4: u32 = HD / 4u;
const TK: u32 = 32u;
override QB: u32;

var<workgroup> ks: array<vec4<f32>, TK * HD4>; // [TK][HD4]
var<workgroup> vs: array<vec4<f32>, TK * HD4>;

@compute @workgroup_size(QB)
fn flash(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let h = wid.y;
    let i = wid.x * QB + t;
    let live = i < P.n_q;
    let qi = min(i, P.n_q - 1u);
    // Keys this query sees, and the most any query of the workgroup sees.
    var visible = P.n_kv;
    var wg_visible = P.n_kv;
    if P.causal != 0u {
        visible = min(qi + P.causal_offset + 1u, P.n_kv);
        let last_q = min(wid.x * QB + QB, P.n_q) - 1u;
        wg_visible = min(last_q + P.causal_offset + 1u, P.n_kv);
    }
    var q: array<vec4<f32>, HD4>;
    var acc: array<vec4<f32>, HD4>;
    let q0 = P.q_off + qi * P.q_stride + h * HD;
    for (var c = 0u; c < HD4; c++) {
        let o = q0 + 4u * c;
        q[c] = vec4<f32>(Q[o], Q[o + 1u], Q[o + 2u], Q[o + 3u]) * P.scale;
        acc[c] = vec4<f32>(0.0);
    }
    var m = -3.4e38;
    var l = 0.0;
    var s: array<f32, TK>;
    for (var j0 = 0u; j0 < wg_visible; j0 += TK) {
        // Stage TK keys and values: 2 · TK · HD4 vec4, 2 · TK · HD4 / QB per invocation.
        for (var e = t; e < TK * HD4; e += QB) {
            let j = j0 + e / HD4;
            var kv4 = vec4<f32>(0.0);
            var vv4 = vec4<f32>(0.0);
            if j < P.n_kv {
                let ko = P.k_off + j * P.kv_stride + h * HD + 4u * (e % HD4);
                let vo = P.v_off + j * P.kv_stride + h * HD + 4u * (e % HD4);
                kv4 = vec4<f32>(f32(KV[ko]), f32(KV[ko + 1u]), f32(KV[ko + 2u]), f32(KV[ko + 3u]));
                vv4 = vec4<f32>(f32(KV[vo]), f32(KV[vo + 1u]), f32(KV[vo + 2u]), f32(KV[vo + 3u]));
            }
            ks[e] = kv4;
            vs[e] = vv4;
        }
        workgroupBarrier();
        let n = min(TK, visible - min(j0, visible));
        if n > 0u {
            var tile_max = m;
            for (var j = 0u; j < n; j++) {
                var d = vec4<f32>(0.0);
                for (var c = 0u; c < HD4; c++) {
                    d += q[c] * ks[j * HD4 + c];
                }
                let sj = (d.x + d.y) + (d.z + d.w);
                s[j] = sj;
                tile_max = max(tile_max, sj);
            }
            let corr = exp(m - tile_max);
            m = tile_max;
            l *= corr;
            for (var c = 0u; c < HD4; c++) {
                acc[c] *= corr;
            }
            for (var j = 0u; j < n; j++) {
                let p = exp(s[j] - m);
                l += p;
                for (var c = 0u; c < HD4; c++) {
                    acc[c] += p * vs[j * HD4 + c];
                }
            }
        }
        workgroupBarrier();
    }
    if live {
        let inv = 1.0 / l;
        let o0 = P.o_off + i * P.o_stride + h * HD;
        for (var c = 0u; c < HD4; c++) {
            let v = acc[c] * inv;
            O[o0 + 4u * c] = v.x;
            O[o0 + 4u * c + 1u] = v.y;
            O[o0 + 4u * c + 2u] = v.z;
            O[o0 + 4u * c + 3u] = v.w;
        }
    }
}
