//! The GEMMs behind `linear`: one loop nest (`driver.rs`) and one plan
//! (packer + micro-kernel) per family of weights.
//!
//! - `driver.rs`: the BLIS loop nest (chunk → pack → tile) and the task split;
//! - `f16.rs`: f32 / f16 weights, plus their small-m dot path;
//! - `packed.rs`: weight-only packed weights (decoded panels, float kernel);
//! - `int8.rs`: int8 × int8 (repacked byte panels, i32 kernel);
//! - `lowbit.rs`: 4- / 3-bit × int8 (unpacked code panels, i32 group dots).
//!
//! The packed families' entry point and small-m paths are in `packed/`.

pub(crate) mod driver;
pub(crate) mod f16;
pub(crate) mod int8;
pub(crate) mod lowbit;
pub(crate) mod packed;

pub(crate) use driver::split;
pub(crate) use f16::linear;
