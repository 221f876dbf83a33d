// Subgroup variant of matvec.wgsl `main` (appended to it when the device has
// subgroups: src/gpu/shaders.rs): a row's LANES partial sums meet by two butterfly
// shuffles, in the same order as `main` adds them, instead of going through
// workgroup memory and a barrier. Threads are numbered subgroup by subgroup so the
// LANES threads of a row share a subgroup (subgroup sizes are powers of two ≥ 4).

@compute @workgroup_size(LANES * ROWS)
fn main_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(subgroup_id) sg: u32, @builtin(subgroup_size) sg_size: u32,
           @builtin(subgroup_invocation_id) sg_lane: u32) {
    let t = sg * sg_size + sg_lane;
    let lane = t % LANES;
    let r = flat_group(wid, nwg) * ROWS + t / LANES;
    // Rows past n compute row n − 1 and do not store: every lane takes the shuffles.
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
        var s = acc[i];
        s += subgroupShuffleXor(s, 1u);
        s += subgroupShuffleXor(s, 2u);
        if lane == 0u && r < P.n {
            epilogue(i, r, s);
        }
    }
}
