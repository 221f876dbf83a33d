// Element-wise kernels: strided row copies (KV-cache appends) and GELU in place.
//
// Bindings (src/gpu/shaders.rs ELEMENTWISE):
//   0 uniform P
//   1 X f32[]  row i at x_off + i·x_stride (copy_rows; unused by gelu)
//   2 Y f32[]  row i at y_off + i·y_stride

// P: RowsParams (common.wgsl).
@group(0) @binding(0) var<uniform> P: RowsParams;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

// Elements per workgroup (src/gpu/shaders.rs ELEMENTWISE_GROUP).
override WG: u32;

fn index(wid: vec3<u32>, nwg: vec3<u32>, l: u32) -> u32 {
    return flat_group(wid, nwg) * WG + l;
}

@compute @workgroup_size(WG)
fn copy_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) l: u32) {
    let e = index(wid, nwg, l);
    if e >= P.rows * P.width {
        return;
    }
    let i = e / P.width;
    let c = e % P.width;
    Y[P.y_off + i * P.y_stride + c] = X[P.x_off + i * P.x_stride + c];
}

@compute @workgroup_size(WG)
fn gelu_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) l: u32) {
    let e = index(wid, nwg, l);
    if e >= P.rows * P.width {
        return;
    }
    let o = P.y_off + (e / P.width) * P.y_stride + e % P.width;
    Y[o] = gelu(Y[o]);
}
