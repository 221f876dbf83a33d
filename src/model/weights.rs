//! Typed handles to the tensors the network reads, checked once at load time.
use crate::format::{
    act_scale_name, packed_dims, ActivationMode, ElementType, ModelFile, TensorInfo,
};
use crate::{Error, Result};
use sotto_kernels::schemes::{self, ActQuant};
use sotto_kernels::Weights;

/// A linear layer `y = x·Wᵀ + b` with `W` stored `[n × k]` in the file.
#[derive(Clone, Debug)]
pub struct Linear {
    pub w: TensorInfo,
    pub b: Option<TensorInfo>,
    pub n: usize,
    pub k: usize,
}

/// Layer norm parameters.
#[derive(Clone, Debug)]
pub struct Norm {
    pub gamma: TensorInfo,
    pub beta: TensorInfo,
}

/// A 2-D table read row by row (positions, embeddings) or a matrix.
#[derive(Clone, Debug)]
pub struct Table {
    pub t: TensorInfo,
    pub rows: usize,
    pub cols: usize,
}

fn expect_shape(file: &ModelFile, name: &str, shape: &[usize]) -> Result<TensorInfo> {
    let t = file.tensor(name)?;
    if t.shape != shape {
        return Err(Error::format(
            name,
            format!("shape {:?}, expected {:?}", t.shape, shape),
        ));
    }
    Ok(t.clone())
}

impl Linear {
    /// Loads `{prefix}/weight` `[n × k]` (conv weights `[n × c × w]` flatten to `k = c·w`)
    /// and, when `bias`, `{prefix}/bias` `[n]`.
    pub fn load(file: &ModelFile, prefix: &str, n: usize, k: usize, bias: bool) -> Result<Linear> {
        let name = format!("{prefix}/weight");
        let w = file.tensor(&name)?.clone();
        if w.shape.first() != Some(&n) || w.elements() != n * k {
            return Err(Error::format(
                &name,
                format!("shape {:?}, expected {n} rows of {k}", w.shape),
            ));
        }
        weights_of(file, &w)?;
        let b = if bias {
            let b = expect_shape(file, &format!("{prefix}/bias"), &[n])?;
            file.f32s(&b)?;
            Some(b)
        } else {
            None
        };
        Ok(Linear { w, b, n, k })
    }

    pub fn weights<'a>(&self, file: &'a ModelFile) -> Weights<'a> {
        weights_of(file, &self.w).expect("checked at load")
    }

    pub fn bias<'a>(&self, file: &'a ModelFile) -> Option<&'a [f32]> {
        self.b
            .as_ref()
            .map(|b| file.f32s(b).expect("checked at load"))
    }
}

/// The kernel view of a weight tensor: f32 / f16 slices of the mapping, or a
/// packed view (every packed layer takes the file's activation mode; static ones their
/// `<prefix>/act_scale`).
pub fn weights_of<'a>(file: &'a ModelFile, t: &TensorInfo) -> Result<Weights<'a>> {
    let scheme = match t.etype {
        ElementType::F32 => return Ok(Weights::F32(file.f32s(t)?)),
        ElementType::F16 => return Ok(Weights::F16(file.f16s(t)?)),
        other => other.scheme().ok_or_else(|| {
            Error::format(
                &t.name,
                format!("element type {} is not supported", other.name()),
            )
        })?,
    };
    // Every packed scheme takes the file's activation mode (int8 × int8 or
    // low-bit × int8 kernels).
    let act = {
        match file.config().activations {
            ActivationMode::None => ActQuant::Float,
            ActivationMode::Dynamic => ActQuant::Dynamic,
            ActivationMode::Static => {
                let name = act_scale_name(&t.name).ok_or_else(|| {
                    Error::format(&t.name, "static activations need a `/weight` name")
                })?;
                let s = file.f32s(file.tensor(&name)?)?;
                ActQuant::Static(s.first().copied().unwrap_or(0.0))
            }
        }
    };
    let (n, k) = packed_dims(&t.shape);
    let view = schemes::view(scheme, n, k, t.group as usize, file.bytes(t), act)
        .map_err(|m| Error::format(&t.name, m))?;
    Ok(Weights::Packed(view))
}

impl Norm {
    pub fn load(file: &ModelFile, prefix: &str, d: usize) -> Result<Norm> {
        let gamma = expect_shape(file, &format!("{prefix}/gamma"), &[d])?;
        let beta = expect_shape(file, &format!("{prefix}/beta"), &[d])?;
        file.f32s(&gamma)?;
        file.f32s(&beta)?;
        Ok(Norm { gamma, beta })
    }
    pub fn params<'a>(&self, file: &'a ModelFile) -> (&'a [f32], &'a [f32]) {
        (
            file.f32s(&self.gamma).expect("checked at load"),
            file.f32s(&self.beta).expect("checked at load"),
        )
    }
}

impl Table {
    pub fn load(file: &ModelFile, name: &str, rows: usize, cols: usize) -> Result<Table> {
        let t = expect_shape(file, name, &[rows, cols])?;
        weights_of(file, &t)?;
        Ok(Table { t, rows, cols })
    }
    pub fn weights<'a>(&self, file: &'a ModelFile) -> Weights<'a> {
        weights_of(file, &self.t).expect("checked at load")
    }
    /// Adds row `r` to `out` (`cols` floats).
    pub fn add_row(&self, file: &ModelFile, r: usize, out: &mut [f32]) {
        let c = self.cols;
        match self.weights(file) {
            Weights::F32(w) => out
                .iter_mut()
                .zip(&w[r * c..(r + 1) * c])
                .for_each(|(o, x)| *o += x),
            Weights::F16(w) => out
                .iter_mut()
                .zip(&w[r * c..(r + 1) * c])
                .for_each(|(o, &x)| *o += half::f16::from_bits(x).to_f32()),
            Weights::Packed(p) => {
                let mut row = vec![0.0f32; c];
                schemes::dequantize_row(&p, r, &mut row);
                out.iter_mut().zip(&row).for_each(|(o, x)| *o += x);
            }
        }
    }
}
