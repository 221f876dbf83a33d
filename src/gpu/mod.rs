//! The WGSL compute backend (feature `gpu`): the whole network on a wgpu device,
//! packed weights uploaded once straight from the mapping and dequantized in the
//! shaders (`shaders/*.wgsl`).
//!
//! - `context`: adapter choice (a software adapter only when asked), limits,
//!   buffers, optional features (subgroups, shader-f16: [`GpuOptions`]), the
//!   pipeline cache keyed by (shader, variant, entry point, constants);
//! - `shaders`: the WGSL sources and the contract with them: each family's bindings,
//!   parameter structs and shared constants;
//! - `ops`: weights on the device and the operations, recorded per submission;
//! - `network`: the GPU backend of `model::network` (the network itself is written
//!   once, for both backends): weights uploaded through the description, passes
//!   recorded against device buffers.
//!
//! Activations, the cross-attention K/V and the KV cache stay on the device; a greedy
//! decode step reads back only a summary of the logits (best text token, best
//! timestamp, log-sum-exp of each: `shaders/logits.wgsl`), other decode calls the
//! logits of the rows the decoding loop asks for.

mod context;
mod network;
mod ops;
#[doc(hidden)]
pub mod shaders;

pub use context::{AdapterPolicy, Gpu, GpuOptions, GpuTimes};
pub use network::{GpuCache, GpuCross, GpuModel};
pub use shaders::GpuFeatures;

// The shaders one by one, for the kernel tests against the scalar reference
// (tests/gpu.rs) and the kernel benches (benches/gpu.rs) — as sotto-kernels
// exposes its CPU kernels. Not the API a transcribing program uses.
#[doc(hidden)]
pub use context::{Kernel, Phase};
#[doc(hidden)]
pub use ops::{check_model, summary_floats, summary_from, Epilogue, GpuWeight, Kv, Recorder, Rows};
