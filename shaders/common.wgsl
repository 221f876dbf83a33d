// Prepended to every sotto shader (src/gpu/shaders.rs): helpers shared by all kernels.

// erfc(z) for z >= 0, fractional error below 1.2e-7: the Chebyshev fit of Numerical
// Recipes (2nd ed., §6.2), as in sotto_kernels::scalar::erfc_nonneg.
fn erfc_nonneg(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
        + t * (-0.82215223 + t * 0.17087277))))))));
    return t * exp(-z * z + poly);
}

// GELU, erf form: x · Φ(x), Φ(x) = erfc(−x/√2)/2, both tails keeping relative accuracy.
fn gelu(x: f32) -> f32 {
    let half_erfc = 0.5 * erfc_nonneg(abs(x) * 0.70710678118654752);
    return x * select(half_erfc, 1.0 - half_erfc, x >= 0.0);
}

// Workgroup index when a large 1-D grid is folded into x and y (x ≤ 65535).
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// Parameters of the strided row kernels (elementwise.wgsl, half.wgsl): row i of X at
// x_off + i·x_stride, of Y at y_off + i·y_stride, `width` elements each.
struct RowsParams {
    rows: u32,
    width: u32,
    x_off: u32,
    x_stride: u32,
    y_off: u32,
    y_stride: u32,
    pad0: u32,
    pad1: u32,
}
