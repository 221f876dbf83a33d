// Rows of a weight table (token embeddings, position encodings) into activations:
// y[i] (+)= table[row_i], row_i = ids[i] (use_ids) or first + i. The table may be in any
// scheme (weights.wgsl). A table split by rows (src/gpu/ops.rs) is one dispatch per
// chunk holding rows row0 .. row0 + n_rows: each writes only the rows it holds.
//
// Bindings (src/gpu/shaders.rs EMBEDDING):
//   0 uniform P
//   1 W   u32[]  the table's bytes
//   2 IDS u32[]  token ids (a dummy unless use_ids)
//   3 Y   f32[]  row i at y_off + i·y_stride, k floats

struct EmbedParams {
    w: WeightLayout,
    rows: u32,
    first: u32,
    use_ids: u32,
    accumulate: u32,
    y_off: u32,
    y_stride: u32,
    row0: u32,
    n_rows: u32,
}

@group(0) @binding(0) var<uniform> P: EmbedParams;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read> IDS: array<u32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;

// Groups of 4 elements per workgroup (src/gpu/shaders.rs EMBED_GROUP).
override WG: u32;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) l: u32) {
    let quads = (P.w.k + 3u) / 4u;
    let e = flat_group(wid, nwg) * WG + l;
    if e >= P.rows * quads {
        return;
    }
    let i = e / quads;
    let c = (e % quads) * 4u;
    var r = P.first + i;
    if P.use_ids != 0u {
        r = IDS[i];
    }
    if r < P.row0 || r - P.row0 >= P.n_rows {
        return;
    }
    let v = weight4(r - P.row0, c);
    let o = P.y_off + i * P.y_stride + c;
    for (var q = 0u; q < 4u; q++) {
        if c + q < P.w.k {
            var y = v[q];
            if P.accumulate != 0u {
                y += Y[o + q];
            }
            Y[o + q] = y;
        }
    }
}
