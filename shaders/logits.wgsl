// A row of logits reduced to what greedy decoding needs, so the row stays on the
// device: tokens masked off (bit clear in M) are dropped, the rest split at `split`
// (text | timestamps). Workgroup g takes elements g·chunk .. (g+1)·chunk and writes,
// per part, the largest value, its first index (0xffffffff: nothing left) and
// Σ exp(v − max); the host combines the workgroups in f64
// (src/gpu/network.rs `summary_from`). The element at `probe` is copied out raw.
//
// Bindings (src/gpu/shaders.rs LOGITS):
//   0 uniform P
//   1 L f32[]  the row at l_off, n floats
//   2 M u32[]  bit i % 32 of word i / 32: token i allowed (ignored unless use_mask)
//   3 O f32[]  workgroup g's 8 floats at o_off + 8·g; the probe at o_off + 8·groups

struct SummaryParams {
    n: u32,
    split: u32,
    l_off: u32,
    chunk: u32,
    o_off: u32,
    use_mask: u32,
    probe: u32,
    groups: u32,
}

@group(0) @binding(0) var<uniform> P: SummaryParams;
@group(0) @binding(1) var<storage, read> L: array<f32>;
@group(0) @binding(2) var<storage, read> M: array<u32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;

const WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;

var<workgroup> rmax: array<f32, 512>; // [part][thread]
var<workgroup> rarg: array<u32, 512>;
var<workgroup> rsum: array<f32, 512>;

fn allowed(i: u32) -> bool {
    return P.use_mask == 0u || ((M[i >> 5u] >> (i & 31u)) & 1u) != 0u;
}

@compute @workgroup_size(256)
fn summary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let g = wid.x;
    let start = g * P.chunk;
    let end = min(start + P.chunk, P.n);
    // Each thread walks its elements in increasing order: a strict `>` keeps the
    // first index of its maximum.
    var mx = array<f32, 2>(0.0, 0.0);
    var arg = array<u32, 2>(NONE, NONE);
    for (var i = start + t; i < end; i += WG) {
        if P.probe == i {
            O[P.o_off + 8u * P.groups] = L[P.l_off + i];
        }
        if !allowed(i) {
            continue;
        }
        let v = L[P.l_off + i];
        let p = select(0u, 1u, i >= P.split);
        if arg[p] == NONE || v > mx[p] {
            mx[p] = v;
            arg[p] = i;
        }
    }
    for (var p = 0u; p < 2u; p++) {
        rmax[p * WG + t] = mx[p];
        rarg[p * WG + t] = arg[p];
    }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if t < s {
            for (var p = 0u; p < 2u; p++) {
                let a = p * WG + t;
                let b = a + s;
                let ia = rarg[a];
                let ib = rarg[b];
                // Larger value wins; equal values: the smaller index.
                let take_b = ib != NONE && (ia == NONE || rmax[b] > rmax[a]
                    || (rmax[b] == rmax[a] && ib < ia));
                if take_b {
                    rmax[a] = rmax[b];
                    rarg[a] = ib;
                }
            }
        }
        workgroupBarrier();
    }
    let m0 = rmax[0];
    let m1 = rmax[WG];
    let a0 = rarg[0];
    let a1 = rarg[WG];
    var sum = array<f32, 2>(0.0, 0.0);
    for (var i = start + t; i < end; i += WG) {
        if !allowed(i) {
            continue;
        }
        let v = L[P.l_off + i];
        if i >= P.split {
            sum[1] += exp(v - m1);
        } else {
            sum[0] += exp(v - m0);
        }
    }
    workgroupBarrier();
    rsum[t] = sum[0];
    rsum[WG + t] = sum[1];
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if t < s {
            rsum[t] += rsum[t + s];
            rsum[WG + t] += rsum[WG + t + s];
        }
        workgroupBarrier();
    }
    if t == 0u {
        let o = P.o_off + 8u * g;
        O[o] = m0;
        O[o + 1u] = bitcast<f32>(a0);
        O[o + 2u] = rsum[0];
        O[o + 3u] = m1;
        O[o + 4u] = bitcast<f32>(a1);
        O[o + 5u] = rsum[WG];
        O[o + 6u] = 0.0;
        O[o + 7u] = 0.0;
    }
}
