// Subgroup variant of norm.wgsl `main` (appended to it when the device has
// subgroups: src/gpu/shaders.rs): each row sum is subgroupAdd, then one slot per
// subgroup in workgroup memory and a single barrier, instead of a 7-step tree.

var<workgroup> sg_red: array<f32, 32>; // WG / 4: subgroups have at least 4 lanes

fn row_sum_sg(v: f32, sg: u32, sg_lane: u32, n_sg: u32) -> f32 {
    let s = subgroupAdd(v);
    if sg_lane == 0u {
        sg_red[sg] = s;
    }
    workgroupBarrier();
    var total = 0.0;
    for (var j = 0u; j < n_sg; j++) {
        total += sg_red[j];
    }
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(128)
fn main_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) t: u32, @builtin(subgroup_id) sg: u32,
           @builtin(subgroup_invocation_id) sg_lane: u32,
           @builtin(num_subgroups) n_sg: u32) {
    let row = flat_group(wid, nwg);
    if row >= P.rows {
        return;
    }
    let x0 = P.x_off + row * P.x_stride;
    var s = 0.0;
    for (var c = t; c < P.d; c += WG) {
        s += X[x0 + c];
    }
    let mean = row_sum_sg(s, sg, sg_lane, n_sg) / f32(P.d);
    var q = 0.0;
    for (var c = t; c < P.d; c += WG) {
        let e = X[x0 + c] - mean;
        q += e * e;
    }
    let inv = inverseSqrt(row_sum_sg(q, sg, sg_lane, n_sg) / f32(P.d) + 1e-5);
    let y0 = P.y_off + row * P.y_stride;
    for (var c = t; c < P.d; c += WG) {
        Y[y0 + c] = (X[x0 + c] - mean) * inv * G[c] + Bt[c];
    }
}
