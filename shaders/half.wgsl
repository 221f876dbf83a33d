// Stores f32 rows as f16 (shader-f16 variant): the decoder's cross-attention K/V
// and KV cache, which every decoded token reads whole; f16 halves that traffic and
// rounds as the CPU backend's f16 caches do (round to nearest even).
//
// Bindings (src/gpu/shaders.rs HALF):
//   0 uniform P
//   1 X f32[]  row i at x_off + i·x_stride
//   2 Y f16[]  row i at y_off + i·y_stride

// P: RowsParams (common.wgsl).
@group(0) @binding(0) var<uniform> P: RowsParams;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f16>;

// Elements per workgroup (src/gpu/shaders.rs ELEMENTWISE_GROUP).
override WG: u32;

// Largest finite f16. A runtime f32 → f16 conversion out of range is undefined in
// WGSL; clamping keeps huge activations finite instead of device-dependent.
const F16_MAX: f32 = 65504.0;

@compute @workgroup_size(WG)
fn store_half(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) l: u32) {
    let e = flat_group(wid, nwg) * WG + l;
    if e >= P.rows * P.width {
        return;
    }
    let i = e / P.width;
    let c = e % P.width;
    let x = X[P.x_off + i * P.x_stride + c];
    Y[P.y_off + i * P.y_stride + c] = f16(clamp(x, -F16_MAX, F16_MAX));
}
