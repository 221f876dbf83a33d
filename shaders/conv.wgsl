// im2col for Whisper's convolutions (kernel 3, padding 1, stride 1 or 2): column
// ch·3 + j of output row t holds input (channel ch, time stride·t + j − 1), zero
// outside 0 .. t_in. The convolution itself is then a linear layer (matmul.wgsl).
//
// Bindings (src/gpu/shaders.rs CONV):
//   0 uniform P
//   1 X f32[]  input (ch, t) at x_off + ch·ch_stride + t·t_stride
//   2 Y f32[]  t_out × (channels·3)

struct ConvParams {
    channels: u32,
    t_in: u32,
    t_out: u32,
    stride: u32,
    x_off: u32,
    ch_stride: u32,
    t_stride: u32,
    pad0: u32,
}

@group(0) @binding(0) var<uniform> P: ConvParams;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

// Elements per workgroup (src/gpu/shaders.rs ELEMENTWISE_GROUP).
override WG: u32;

@compute @workgroup_size(WG)
fn im2col(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) l: u32) {
    let width = P.channels * 3u;
    let e = flat_group(wid, nwg) * WG + l;
    if e >= P.t_out * width {
        return;
    }
    let t = e / width;
    let col = e % width;
    let ch = col / 3u;
    let src = P.stride * t + col % 3u; // input time + 1
    var v = 0.0;
    if src >= 1u && src <= P.t_in {
        v = X[P.x_off + ch * P.ch_stride + (src - 1u) * P.t_stride];
    }
    Y[e] = v;
}
