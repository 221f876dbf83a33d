//! The Whisper network, written once ([`network`]) over a backend interface
//! ([`backend`]) from one description of its layers ([`plan`]); the CPU
//! backend ([`cpu`]) runs it on sotto-kernels, the GPU backend (`crate::gpu`)
//! on wgpu. Weights stay in the mapped file.

pub(crate) mod backend;
pub(crate) mod cpu;
pub(crate) mod network;
pub(crate) mod plan;

pub(crate) use backend::Backend;
pub(crate) use cpu::{Cpu, CpuModel};
pub use cpu::{LinearObserver, Op, OpProfiler, OpTiming};
pub(crate) use network::Network;
pub(crate) use plan::{Desc, Layers};
