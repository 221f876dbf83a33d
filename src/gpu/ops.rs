//! Weights on the device and the operations the network is made of, recorded into
//! one command buffer per call (`Recorder`) with their parameters in one uniform
//! buffer, each dispatch's slice 256-aligned.
//!
//! Nothing a model file or audio can reach panics here: shapes the kernels cannot
//! take are refused at load ([`check_model`], [`GpuWeight::upload`]); a recording
//! that still cannot be made (an API caller's out-of-range arguments) is not
//! submitted, and its error comes back from the next [`Gpu::check`] (encode,
//! read-back) like a device error.
use super::context::{Gpu, Kernel, Phase, PARAM_BYTES};
use super::shaders::{
    AttentionParams, ConvParams, EmbedParams, Int8Params, LinearParams, NormParams, Params,
    QuantParams, RowsParams, Shader, SummaryParams, WeightLayout, ATTENTION_MAX_HEAD_DIM,
    ATTENTION_MAX_KV, ELEMENTWISE_GROUP, EMBED_GROUP, FLASH_HEAD_DIM, FLASH_MIN_Q, FLASH_QUERIES,
    INT8_COLS, INT8_ROWS, MATMUL_COLS, MATMUL_ROWS, MATVEC_MAX_M, MATVEC_ROWS, SUMMARY_CHUNK,
};
use crate::decoding::filters::{LogitSummary, PartSummary};
use crate::format::{ElementType, ModelConfig};
use sotto_kernels::schemes::{self, ActQuant};
use std::sync::Arc;

/// Largest workgroup count along one dispatch dimension (WebGPU's default limit).
const MAX_GROUPS: u32 = 65_535;

/// A weight matrix `n × k` on the device: the tensor's bytes as in the file (every
/// plane), in one buffer, or split by output rows into chunks when the tensor is
/// larger than one binding may be ([`Gpu::max_binding`]); each chunk is a tensor of
/// its own rows in the same layout, and each operation dispatches once per chunk.
pub struct GpuWeight {
    chunks: Vec<Chunk>,
    pub etype: ElementType,
    pub n: usize,
    pub k: usize,
    /// Elements per group along k (0 for ungrouped types).
    pub group: usize,
    /// Activations of a packed weight: `Float` dequantizes the weight (matvec /
    /// matmul), `Dynamic` / `Static` quantize x on the device (quant.wgsl, int8.wgsl).
    pub act: ActQuant,
}

/// Rows `row0 .. row0 + n` of a weight in one buffer.
struct Chunk {
    buf: wgpu::Buffer,
    row0: usize,
    n: usize,
    layout: WeightLayout,
}

/// Byte ranges of the three planes of an `n × k` tensor (`group`: 0 for unpacked
/// and int8 types) and its length.
fn planes(
    etype: ElementType,
    n: usize,
    k: usize,
    group: usize,
) -> Result<([(usize, usize); 3], usize), String> {
    match etype.scheme() {
        None => {
            let size = if etype == ElementType::F32 { 4 } else { 2 };
            let len = n
                .checked_mul(k)
                .and_then(|v| v.checked_mul(size))
                .ok_or_else(|| format!("{etype:?} {n}×{k} is too large"))?;
            Ok(([(0, len), (len, 0), (len, 0)], len))
        }
        Some(scheme) => {
            let l = schemes::layout(scheme, n, k, group)?;
            Ok((l.planes, l.total))
        }
    }
}

/// Writes `src` at `off` of `buf` (`off` a multiple of 4); the last partial word is
/// zero-padded, the only bytes copied on the host.
fn write_padded(gpu: &Gpu, buf: &wgpu::Buffer, off: usize, src: &[u8]) {
    let whole = src.len() / 4 * 4;
    if whole > 0 {
        gpu.queue.write_buffer(buf, off as u64, &src[..whole]);
    }
    if whole < src.len() {
        let mut tail = [0u8; 4];
        tail[..src.len() - whole].copy_from_slice(&src[whole..]);
        gpu.queue.write_buffer(buf, (off + whole) as u64, &tail);
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl GpuWeight {
    /// Uploads one tensor's bytes (`n × k` of `etype`, `group` for the grouped schemes)
    /// straight from `bytes` (e.g. the memory-mapped file): each buffer gets its byte
    /// ranges of `bytes` written directly, no host copy besides the last partial word
    /// of a plane.
    pub fn upload(
        gpu: &Gpu,
        name: &str,
        etype: ElementType,
        n: usize,
        k: usize,
        group: usize,
        bytes: &[u8],
    ) -> Result<GpuWeight, String> {
        if n == 0 || k == 0 {
            return Err(format!("{name}: {etype:?} {n}×{k} has no elements"));
        }
        // The kernels take a chunk's rows as workgroups of one dispatch dimension.
        let most_rows = MAX_GROUPS as usize * MATMUL_COLS.min(INT8_COLS);
        if n > most_rows {
            return Err(format!(
                "{name}: {n} rows, the GPU kernels take at most {most_rows}"
            ));
        }
        let group = if etype.scheme().is_some() { group } else { 0 };
        let ng = match etype.scheme() {
            Some(s) if s.is_grouped() => k.div_ceil(group.max(1)),
            _ => 1,
        };
        let (full, expect) = planes(etype, n, k, group)?;
        if bytes.len() != expect {
            return Err(format!(
                "{name}: {} bytes, {etype:?} {n}×{k} takes {expect}",
                bytes.len()
            ));
        }
        // 4 bytes of slack: weights.wgsl reads whole words past unaligned bytes.
        let fits = |total: usize| {
            let size = total as u64 + 4;
            size <= gpu.max_binding() && size <= u32::MAX as u64
        };
        let rows = if fits(expect) {
            n
        } else {
            // Chunks start where a bias slice may be bound (the storage offset
            // alignment, in floats) and, for nf4-dq, on a 256-group super-block.
            let align = (gpu.limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
            let sb = if etype == ElementType::Nf4Dq {
                256 / gcd(ng, 256)
            } else {
                1
            };
            let step = align / gcd(align, sb) * sb;
            let chunk_fits = |c: usize| planes(etype, c, k, group).is_ok_and(|p| fits(p.1));
            if step >= n || !chunk_fits(step) {
                return Err(format!(
                    "{name}: {} bytes is more than this GPU binds at once ({} bytes), \
                     and a chunk of {} rows is too",
                    bytes.len(),
                    gpu.max_binding(),
                    step.min(n)
                ));
            }
            // The most whole steps that fit (the size grows with the rows).
            let (mut lo, mut hi) = (1, n / step);
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if chunk_fits(mid * step) {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            lo * step
        };
        let mut chunks = Vec::new();
        for row0 in (0..n).step_by(rows) {
            let cn = rows.min(n - row0);
            let (dst, total) = planes(etype, cn, k, group)?;
            let label = if cn == n {
                name.to_string()
            } else {
                format!("{name}[{row0}..{}]", row0 + cn)
            };
            let buf = gpu.buffer(&label, total as u64 + 4);
            if cn == n {
                write_padded(gpu, &buf, 0, bytes);
            } else {
                for (p, &(doff, dlen)) in dst.iter().enumerate() {
                    if dlen == 0 {
                        continue;
                    }
                    let (soff, slen) = full[p];
                    // Every plane is row-major over the rows, but int8-tensor's one
                    // scale (each chunk has a copy) and nf4-dq's per-super-block
                    // (min, step) pairs (chunks start on a super-block).
                    let start = if etype == ElementType::Nf4Dq && p == 2 {
                        row0 * ng / 256 * 8
                    } else if slen == dlen {
                        0
                    } else {
                        row0 * (slen / n)
                    };
                    let src = bytes
                        .get(soff + start..soff + start + dlen)
                        .ok_or_else(|| format!("{name}: chunk plane {p} out of range"))?;
                    write_padded(gpu, &buf, doff, src);
                }
            }
            // Unpacked types have one plane (p1 = p2 = 0 as before the split).
            let (p1, p2) = if etype.scheme().is_some() {
                (dst[1].0, dst[2].0)
            } else {
                (0, 0)
            };
            let u = |v: usize| {
                u32::try_from(v).map_err(|_| format!("{name}: {v} does not fit the GPU's u32"))
            };
            let layout = WeightLayout {
                k: u(k)?,
                group: u(group)?,
                ng: u(ng)?,
                row_bytes: u(dst[0].1 / cn)?,
                p1: u(p1)?,
                p2: u(p2)?,
                pad0: 0,
                pad1: 0,
            };
            chunks.push(Chunk {
                buf,
                row0,
                n: cn,
                layout,
            });
        }
        Ok(GpuWeight {
            chunks,
            etype,
            n,
            k,
            group,
            act: ActQuant::Float,
        })
    }

    /// How many buffers hold the weight (more than one when split).
    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }

    /// The same weight with int8 activations `act` (checked as the CPU's
    /// `schemes::view` checks it).
    pub fn with_act(mut self, act: ActQuant) -> Result<GpuWeight, String> {
        if act != ActQuant::Float {
            let Some(scheme) = self.etype.scheme() else {
                return Err(format!(
                    "{:?} weights take float activations only",
                    self.etype
                ));
            };
            if scheme.is_grouped() && self.group > schemes::MAX_INT8_GROUP {
                return Err(format!(
                    "{scheme:?} group {} is too long for int8 activations (at most {})",
                    self.group,
                    schemes::MAX_INT8_GROUP
                ));
            }
            if self.k > schemes::MAX_INT8_DOT_K {
                return Err(format!(
                    "k = {} is too long for int8 activations (at most {})",
                    self.k,
                    schemes::MAX_INT8_DOT_K
                ));
            }
            if let ActQuant::Static(s) = act {
                if !(s.is_finite() && s > 0.0) {
                    return Err(format!(
                        "static activation scale {s} is not finite and positive"
                    ));
                }
            }
        }
        self.act = act;
        Ok(self)
    }

    fn constants(&self) -> [(&'static str, u32); 1] {
        [("SCHEME", self.etype as u32)]
    }
}

/// Rows of f32 activations in a buffer: row `i` starts at float `off + i·stride`.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub buf: &'a wgpu::Buffer,
    pub off: usize,
    pub stride: usize,
}

impl<'a> Rows<'a> {
    pub fn new(buf: &'a wgpu::Buffer, off: usize, stride: usize) -> Rows<'a> {
        Rows { buf, off, stride }
    }
}

/// Keys and values of an attention, in one buffer of f32, or of f16 (`half`):
/// key `j` at element `k_off + j·stride`, value `j` at `v_off + j·stride`.
#[derive(Clone, Copy)]
pub struct Kv<'a> {
    pub buf: &'a wgpu::Buffer,
    pub k_off: usize,
    pub v_off: usize,
    pub stride: usize,
    pub half: bool,
}

/// What a linear layer does after the dot products.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Epilogue {
    pub gelu: bool,
    /// y += result (residual connections).
    pub accumulate: bool,
}

struct Dispatch {
    kernel: Arc<Kernel>,
    /// Each buffer bound from a byte offset to its end.
    bufs: Vec<(wgpu::Buffer, u64)>,
    /// Byte offset of its parameters in the uniform buffer (the dynamic offset).
    params: u32,
    groups: [u32; 3],
}

/// Operations recorded for one submission.
pub struct Recorder<'g> {
    gpu: &'g Gpu,
    params: Vec<u8>,
    cmds: Vec<Dispatch>,
    phase: Phase,
    /// The first operation that could not be recorded: then nothing is submitted,
    /// and this is the error of the next [`Gpu::check`].
    error: Option<String>,
}

/// What recording one operation gives.
type Recorded = Result<(), String>;

/// `v` as the u32 the shaders compute in.
fn u(v: usize) -> Result<u32, String> {
    u32::try_from(v).map_err(|_| format!("GPU operand {v} does not fit in u32"))
}

/// Folds `count` workgroups into (x, y) under the per-dimension limit; the shaders
/// rebuild the flat index (common.wgsl `flat_group`) and skip the overhang.
fn fold(count: usize) -> Result<[u32; 3], String> {
    let count = count.max(1);
    if count <= MAX_GROUPS as usize {
        grid(count, 1)
    } else {
        grid(MAX_GROUPS as usize, count.div_ceil(MAX_GROUPS as usize))
    }
}

/// `x × y` workgroups, each within the per-dimension limit.
fn grid(x: usize, y: usize) -> Result<[u32; 3], String> {
    if x > MAX_GROUPS as usize || y > MAX_GROUPS as usize {
        return Err(format!(
            "{x} × {y} workgroups: more than {MAX_GROUPS} along one dimension"
        ));
    }
    Ok([u(x)?, u(y)?, 1])
}

/// The linear kernels' epilogue bits: 0 bias, 1 GELU, 2 accumulate.
fn flags(bias: bool, epi: Epilogue) -> u32 {
    u32::from(bias) | (u32::from(epi.gelu) << 1) | (u32::from(epi.accumulate) << 2)
}

impl<'g> Recorder<'g> {
    pub fn new(gpu: &'g Gpu) -> Recorder<'g> {
        Recorder {
            gpu,
            params: Vec::new(),
            cmds: Vec::new(),
            phase: Phase::Other,
            error: None,
        }
    }

    /// What the submission's device time counts as while timing is on
    /// ([`Gpu::enable_timing`]).
    pub fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }

    /// Keeps the first error of the recording.
    fn note(&mut self, r: Recorded) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }

    /// Records `kernel` with `params` and the storage buffers of bindings 1.. (each
    /// bound from a byte offset, a multiple of the storage offset alignment). The
    /// parameter type and the buffer count must be the family's ([`Shader::bindings`]).
    fn dispatch<P: Params>(
        &mut self,
        kernel: &Arc<Kernel>,
        params: &P,
        bufs: &[(&wgpu::Buffer, u64)],
        groups: [u32; 3],
    ) -> Recorded {
        const { assert!(std::mem::size_of::<P>() <= PARAM_BYTES as usize) };
        let shader = kernel.shader;
        if shader.params().map(|l| l.name) != Some(P::LAYOUT.name) {
            return Err(format!(
                "{} given to {}.wgsl",
                P::LAYOUT.name,
                shader.name()
            ));
        }
        if bufs.len() + 1 != shader.bindings().len() {
            return Err(format!(
                "{} buffers given to {}.wgsl, which binds {}",
                bufs.len(),
                shader.name(),
                shader.bindings().len() - 1
            ));
        }
        let align = self.gpu.limits.min_uniform_buffer_offset_alignment as usize;
        let start = self.params.len().next_multiple_of(align);
        let offset = u32::try_from(start)
            .map_err(|_| "more parameters than one submission holds".to_string())?;
        self.params.resize(start, 0);
        self.params.extend_from_slice(bytemuck::bytes_of(params));
        // Every binding covers PARAM_BYTES, so the last one needs them all.
        self.params.resize(start + PARAM_BYTES as usize, 0);
        self.cmds.push(Dispatch {
            kernel: kernel.clone(),
            bufs: bufs.iter().map(|&(b, off)| (b.clone(), off)).collect(),
            params: offset,
            groups,
        });
        Ok(())
    }

    /// Encodes everything recorded into one compute pass and submits it (returns at
    /// once). If an operation could not be recorded, nothing is submitted and its
    /// error is kept for the next [`Gpu::check`].
    pub fn submit(self) {
        if let Some(e) = self.error {
            self.gpu.fail(e);
            return;
        }
        if self.cmds.is_empty() {
            return;
        }
        let gpu = self.gpu;
        // One uniform buffer for every submission, grown when a submission needs more
        // (the bind groups naming the old one go with it); held until submitted so
        // that no other thread's parameters overwrite these first.
        let mut held = gpu.params.lock().unwrap_or_else(|e| e.into_inner());
        let need = self.params.len() as u64;
        let uniforms = match &*held {
            Some(b) if b.size() >= need => b.clone(),
            old => {
                if let Some(old) = old {
                    gpu.binds.forget(&[old]);
                }
                let b = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("params"),
                    size: need.next_power_of_two().max(64 << 10),
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                *held = Some(b.clone());
                b
            }
        };
        gpu.queue.write_buffer(&uniforms, 0, &self.params);
        let groups: Vec<wgpu::BindGroup> = self
            .cmds
            .iter()
            .map(|d| {
                gpu.binds
                    .get(&gpu.device, &d.kernel.layout, &uniforms, &d.bufs)
            })
            .collect();
        gpu.submit_pass(self.phase, |pass| {
            for (d, g) in self.cmds.iter().zip(&groups) {
                pass.set_pipeline(&d.kernel.pipeline);
                pass.set_bind_group(0, g, &[d.params]);
                pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
            }
        });
        drop(held);
    }

    /// `y[m × n] = x[m × k] · wᵀ + bias`, then the epilogue: matvec for up to
    /// [`MATVEC_MAX_M`] rows, tiled matmul above.
    pub fn linear(
        &mut self,
        w: &GpuWeight,
        bias: Option<&wgpu::Buffer>,
        x: Rows,
        m: usize,
        y: Rows,
        epi: Epilogue,
    ) {
        let r = self.try_linear(w, bias, x, m, y, epi);
        self.note(r);
    }

    fn try_linear(
        &mut self,
        w: &GpuWeight,
        bias: Option<&wgpu::Buffer>,
        x: Rows,
        m: usize,
        y: Rows,
        epi: Epilogue,
    ) -> Recorded {
        if m == 0 {
            return Ok(());
        }
        if w.act != ActQuant::Float {
            return self.try_linear_int8(w, bias, x, m, y, epi, self.gpu.dot4);
        }
        let shader = if m <= MATVEC_MAX_M {
            Shader::Matvec
        } else {
            Shader::Matmul
        };
        let k = self.gpu.kernel(shader, "main", &w.constants())?;
        // One dispatch per chunk: its output columns and its slice of the bias.
        for c in &w.chunks {
            let p = LinearParams {
                w: c.layout,
                m: u(m)?,
                n: u(c.n)?,
                x_off: u(x.off)?,
                x_stride: u(x.stride)?,
                y_off: u(y.off + c.row0)?,
                y_stride: u(y.stride)?,
                flags: flags(bias.is_some(), epi),
                pad: 0,
            };
            let b = bias.map_or((&self.gpu.dummy, 0), |b| (b, c.row0 as u64 * 4));
            let groups = if shader == Shader::Matvec {
                fold(c.n.div_ceil(MATVEC_ROWS))?
            } else {
                grid(c.n.div_ceil(MATMUL_COLS), m.div_ceil(MATMUL_ROWS))?
            };
            let bufs = [(&c.buf, 0), (x.buf, 0), b, (y.buf, 0)];
            self.dispatch(&k, &p, &bufs, groups)?;
        }
        Ok(())
    }

    /// [`Recorder::linear`] for a weight with int8 activations (`w.act`): x quantized
    /// per row on the device, then exact i32 dots: per output for int8 weights, with
    /// `dot4I8Packed` when `dot4` (else unpacked), per group for 4- / 3-bit weights.
    #[allow(clippy::too_many_arguments)]
    pub fn linear_int8(
        &mut self,
        w: &GpuWeight,
        bias: Option<&wgpu::Buffer>,
        x: Rows,
        m: usize,
        y: Rows,
        epi: Epilogue,
        dot4: bool,
    ) {
        let r = self.try_linear_int8(w, bias, x, m, y, epi, dot4);
        self.note(r);
    }

    #[allow(clippy::too_many_arguments)]
    fn try_linear_int8(
        &mut self,
        w: &GpuWeight,
        bias: Option<&wgpu::Buffer>,
        x: Rows,
        m: usize,
        y: Rows,
        epi: Epilogue,
        dot4: bool,
    ) -> Recorded {
        if m == 0 {
            return Ok(());
        }
        let (mode, scale) = match w.act {
            ActQuant::Static(s) => (1, s),
            _ => (0, 1.0),
        };
        let kw = w.k.div_ceil(4);
        let (codes, scales) = self.gpu.act_buffers((m * kw) as u64 * 4, m);
        let p = QuantParams {
            k: u(w.k)?,
            kw: u(kw)?,
            rows: u(m)?,
            x_off: u(x.off)?,
            x_stride: u(x.stride)?,
            mode,
            scale,
            pad0: 0,
        };
        let k = self.gpu.kernel(Shader::Quant, "quantize", &[])?;
        let bufs = [(x.buf, 0), (&codes, 0), (&scales, 0)];
        self.dispatch(&k, &p, &bufs, fold(m)?)?;
        let constants = [("SCHEME", w.etype as u32), ("DOT4", u32::from(dot4))];
        let int8 = w.etype.scheme().is_some_and(|s| s.is_int8());
        let entry = if int8 { "main" } else { "lowbit" };
        let k = self.gpu.kernel(Shader::Int8, entry, &constants)?;
        for c in &w.chunks {
            let p = Int8Params {
                w: c.layout,
                m: u(m)?,
                n: u(c.n)?,
                kw: u(kw)?,
                y_off: u(y.off + c.row0)?,
                y_stride: u(y.stride)?,
                flags: flags(bias.is_some(), epi),
                pad0: 0,
                pad1: 0,
            };
            let b = bias.map_or((&self.gpu.dummy, 0), |b| (b, c.row0 as u64 * 4));
            let groups = grid(c.n.div_ceil(INT8_COLS), m.div_ceil(INT8_ROWS))?;
            let bufs = [(&c.buf, 0), (&codes, 0), (&scales, 0), b, (y.buf, 0)];
            self.dispatch(&k, &p, &bufs, groups)?;
        }
        Ok(())
    }

    /// Layer norm (eps 1e-5) of `rows` rows of `d` floats.
    pub fn layer_norm(
        &mut self,
        gamma: &wgpu::Buffer,
        beta: &wgpu::Buffer,
        d: usize,
        x: Rows,
        rows: usize,
        y: Rows,
    ) {
        let r = (|| {
            let p = NormParams {
                d: u(d)?,
                rows: u(rows)?,
                x_off: u(x.off)?,
                x_stride: u(x.stride)?,
                y_off: u(y.off)?,
                y_stride: u(y.stride)?,
                pad0: 0,
                pad1: 0,
            };
            let k = self.gpu.kernel(Shader::Norm, "main", &[])?;
            let bufs = [(x.buf, 0), (gamma, 0), (beta, 0), (y.buf, 0)];
            self.dispatch(&k, &p, &bufs, fold(rows)?)
        })();
        self.note(r);
    }

    /// Attention of `n_q` query rows over `n_kv` keys/values of `kv`, every head.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &mut self,
        q: Rows,
        kv: Kv,
        n_q: usize,
        n_kv: usize,
        n_head: usize,
        head_dim: usize,
        causal_offset: Option<usize>,
        out: Rows,
    ) {
        let r = self.try_attention(q, kv, n_q, n_kv, n_head, head_dim, causal_offset, out);
        self.note(r);
    }

    #[allow(clippy::too_many_arguments)]
    fn try_attention(
        &mut self,
        q: Rows,
        kv: Kv,
        n_q: usize,
        n_kv: usize,
        n_head: usize,
        head_dim: usize,
        causal_offset: Option<usize>,
        out: Rows,
    ) -> Recorded {
        if n_q == 0 {
            return Ok(());
        }
        let flash = head_dim == FLASH_HEAD_DIM && (n_q >= FLASH_MIN_Q || n_kv > ATTENTION_MAX_KV);
        // Models beyond these are refused at load (check_model).
        if !flash && (n_kv > ATTENTION_MAX_KV || head_dim > ATTENTION_MAX_HEAD_DIM) {
            return Err(format!(
                "GPU attention holds at most {ATTENTION_MAX_KV} keys of \
                 {ATTENTION_MAX_HEAD_DIM} floats ({n_kv} of {head_dim} asked)"
            ));
        }
        let p = AttentionParams {
            n_q: u(n_q)?,
            n_kv: u(n_kv)?,
            n_head: u(n_head)?,
            head_dim: u(head_dim)?,
            q_off: u(q.off)?,
            q_stride: u(q.stride)?,
            k_off: u(kv.k_off)?,
            v_off: u(kv.v_off)?,
            kv_stride: u(kv.stride)?,
            o_off: u(out.off)?,
            o_stride: u(out.stride)?,
            causal: u32::from(causal_offset.is_some()),
            causal_offset: u(causal_offset.unwrap_or(0))?,
            scale: 1.0 / (head_dim as f32).sqrt(),
            pad0: 0,
            pad1: 0,
        };
        let shader = if kv.half {
            Shader::AttentionF16
        } else {
            Shader::Attention
        };
        let bufs = [(q.buf, 0), (kv.buf, 0), (out.buf, 0)];
        if flash {
            let k = self.gpu.kernel(shader, "flash", &[])?;
            let groups = grid(n_q.div_ceil(FLASH_QUERIES), n_head)?;
            self.dispatch(&k, &p, &bufs, groups)
        } else {
            let k = self.gpu.kernel(shader, "main", &[])?;
            self.dispatch(&k, &p, &bufs, grid(n_q, n_head)?)
        }
    }

    /// im2col for a kernel-3, padding-1 convolution: `y` gets `t_out × (channels·3)`.
    #[allow(clippy::too_many_arguments)]
    pub fn im2col(
        &mut self,
        x: &wgpu::Buffer,
        channels: usize,
        t_in: usize,
        ch_stride: usize,
        t_stride: usize,
        stride: usize,
        t_out: usize,
        y: &wgpu::Buffer,
    ) {
        let r = (|| {
            let p = ConvParams {
                channels: u(channels)?,
                t_in: u(t_in)?,
                t_out: u(t_out)?,
                stride: u(stride)?,
                x_off: 0,
                ch_stride: u(ch_stride)?,
                t_stride: u(t_stride)?,
                pad0: 0,
            };
            let k = self.gpu.kernel(Shader::Conv, "im2col", &[])?;
            let n = u(t_out * channels * 3)? as usize;
            let groups = fold(n.div_ceil(ELEMENTWISE_GROUP))?;
            self.dispatch(&k, &p, &[(x, 0), (y, 0)], groups)
        })();
        self.note(r);
    }

    /// Copies `rows × width` floats between strided rows.
    pub fn copy_rows(&mut self, x: Rows, rows: usize, width: usize, y: Rows) {
        self.store_rows(x, rows, width, y, false);
    }

    /// [`Recorder::copy_rows`] into f32 rows, or into f16 rows when `half` (rounded
    /// to nearest even, clamped to ±65504; the device must have shader-f16).
    pub fn store_rows(&mut self, x: Rows, rows: usize, width: usize, y: Rows, half: bool) {
        let r = (|| {
            let p = RowsParams {
                rows: u(rows)?,
                width: u(width)?,
                x_off: u(x.off)?,
                x_stride: u(x.stride)?,
                y_off: u(y.off)?,
                y_stride: u(y.stride)?,
                pad0: 0,
                pad1: 0,
            };
            let k = if half {
                self.gpu.kernel(Shader::Half, "store_half", &[])?
            } else {
                self.gpu.kernel(Shader::Elementwise, "copy_rows", &[])?
            };
            let n = u(rows * width)? as usize;
            let groups = fold(n.div_ceil(ELEMENTWISE_GROUP))?;
            self.dispatch(&k, &p, &[(x.buf, 0), (y.buf, 0)], groups)
        })();
        self.note(r);
    }

    /// GELU in place on `rows × width` floats.
    pub fn gelu(&mut self, y: Rows, rows: usize, width: usize) {
        let r = (|| {
            let p = RowsParams {
                rows: u(rows)?,
                width: u(width)?,
                x_off: 0,
                x_stride: 0,
                y_off: u(y.off)?,
                y_stride: u(y.stride)?,
                pad0: 0,
                pad1: 0,
            };
            let k = self.gpu.kernel(Shader::Elementwise, "gelu_rows", &[])?;
            let dummy = self.gpu.dummy.clone();
            let n = u(rows * width)? as usize;
            let groups = fold(n.div_ceil(ELEMENTWISE_GROUP))?;
            self.dispatch(&k, &p, &[(&dummy, 0), (y.buf, 0)], groups)
        })();
        self.note(r);
    }

    /// `y[i] (+)= table[row_i]` for `rows` rows: `row_i = ids[i]` when `ids` is given,
    /// else `first + i`.
    pub fn embed(
        &mut self,
        table: &GpuWeight,
        ids: Option<&wgpu::Buffer>,
        first: usize,
        rows: usize,
        accumulate: bool,
        y: Rows,
    ) {
        let r = (|| {
            let k = self
                .gpu
                .kernel(Shader::Embedding, "main", &table.constants())?;
            let use_ids = u32::from(ids.is_some());
            let ids = ids.unwrap_or(&self.gpu.dummy);
            let n = u(rows * table.k.div_ceil(4))? as usize;
            // Each chunk writes the rows it holds.
            for c in &table.chunks {
                let p = EmbedParams {
                    w: c.layout,
                    rows: u(rows)?,
                    first: u(first)?,
                    use_ids,
                    accumulate: u32::from(accumulate),
                    y_off: u(y.off)?,
                    y_stride: u(y.stride)?,
                    row0: u(c.row0)?,
                    n_rows: u(c.n)?,
                };
                let groups = fold(n.div_ceil(EMBED_GROUP))?;
                self.dispatch(&k, &p, &[(&c.buf, 0), (ids, 0), (y.buf, 0)], groups)?;
            }
            Ok(())
        })();
        self.note(r);
    }

    /// Reduces the `n` logits at `row` for greedy decoding (logits.wgsl): tokens
    /// whose bit in `mask` is clear dropped (all kept without a mask), the rest split
    /// at `split`. Writes [`summary_floats`] floats at `out_off` of `out`; the element
    /// at `probe` (if `< n`) is copied last.
    #[allow(clippy::too_many_arguments)]
    pub fn summary(
        &mut self,
        row: Rows,
        n: usize,
        mask: Option<&wgpu::Buffer>,
        split: usize,
        probe: usize,
        out: &wgpu::Buffer,
        out_off: usize,
    ) {
        let r = (|| {
            let groups = n.div_ceil(SUMMARY_CHUNK).max(1);
            let p = SummaryParams {
                n: u(n)?,
                split: u(split.min(n))?,
                l_off: u(row.off)?,
                chunk: u(SUMMARY_CHUNK)?,
                o_off: u(out_off)?,
                use_mask: u32::from(mask.is_some()),
                probe: u(probe.min(u32::MAX as usize))?,
                groups: u(groups)?,
            };
            let k = self.gpu.kernel(Shader::Logits, "summary", &[])?;
            let mask = mask.unwrap_or(&self.gpu.dummy);
            let bufs = [(row.buf, 0), (mask, 0), (out, 0)];
            self.dispatch(&k, &p, &bufs, grid(groups, 1)?)
        })();
        self.note(r);
    }
}

/// Whether the kernels take a model of config `c` on `gpu`: checked at load
/// (`GpuModel::new`), so that no dispatch meets a shape its kernel cannot take and
/// `auto` can fall back to the CPU. The attention kernels' bounds, and the largest
/// activation buffer the network keeps (encoder activations, cross-attention K/V
/// and KV cache of every layer, the logits of a whole context) within one binding
/// and u32 element offsets.
pub fn check_model(gpu: &Gpu, c: &ModelConfig) -> Result<(), String> {
    let d = c.n_audio_state as u128;
    for (part, ctx) in [("audio", c.n_audio_ctx), ("text", c.n_text_ctx)] {
        if ctx as usize > ATTENTION_MAX_KV {
            return Err(format!(
                "the GPU attention kernel holds at most {ATTENTION_MAX_KV} positions \
                 (n_{part}_ctx is {ctx})"
            ));
        }
    }
    for (part, heads) in [("audio", c.n_audio_head), ("text", c.n_text_head)] {
        let head_dim = d / heads.max(1) as u128;
        if head_dim > ATTENTION_MAX_HEAD_DIM as u128 {
            return Err(format!(
                "the GPU attention kernel takes heads of at most {ATTENTION_MAX_HEAD_DIM} \
                 (the {part} heads have {head_dim})"
            ));
        }
    }
    let (nm, ac, tc) = (
        c.n_mels as u128,
        c.n_audio_ctx as u128,
        c.n_text_ctx as u128,
    );
    let (layers, vocab) = (c.n_text_layer as u128, c.n_vocab as u128);
    let largest = [
        2 * ac * nm * 3,
        ac * 4 * d,
        layers * ac.max(tc) * 2 * d,
        tc * 4 * d,
        tc * vocab,
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    let binding = gpu
        .limits
        .max_storage_buffer_binding_size
        .min(gpu.limits.max_buffer_size) as u128;
    if largest > u32::MAX as u128 || largest * 4 > binding {
        return Err(format!(
            "the model needs {largest} floats in one buffer, this GPU binds {binding} bytes"
        ));
    }
    Ok(())
}

/// Floats [`Recorder::summary`] writes for a row of `n` logits.
pub fn summary_floats(n: usize) -> usize {
    8 * n.div_ceil(SUMMARY_CHUNK).max(1) + 1
}

/// Combines the workgroups of [`Recorder::summary`] (in f64, like
/// `decoding::filters::log_sum_exp`): the row's two parts and the probed value.
/// `out` holds [`summary_floats`]`(n)` floats; a group missing from a shorter `out`
/// counts as empty, a missing probe as NaN.
pub fn summary_from(out: &[f32], n: usize) -> (LogitSummary, f32) {
    let groups = n.div_ceil(SUMMARY_CHUNK).max(1);
    let mut parts = [PartSummary::EMPTY; 2];
    for (p, part) in parts.iter_mut().enumerate() {
        let found = |g: usize| match out.get(8 * g + 3 * p..8 * g + 3 * p + 3) {
            Some(&[m, a, s]) if a.to_bits() != u32::MAX => Some((m, a.to_bits(), s)),
            _ => None,
        };
        // Groups cover increasing indices: the first group holding the maximum has its
        // first index.
        let mut best: Option<(f32, u32)> = None;
        for g in 0..groups {
            if let Some((m, a, _)) = found(g) {
                if best.is_none_or(|(bm, _)| m > bm) {
                    best = Some((m, a));
                }
            }
        }
        let Some((m, a)) = best else { continue };
        part.arg = a;
        part.max = m;
        if m == f32::NEG_INFINITY {
            continue;
        }
        let s: f64 = (0..groups)
            .filter_map(found)
            .map(|(gm, _, gs)| gs as f64 * ((gm - m) as f64).exp())
            .sum();
        part.lse = m + s.ln() as f32;
    }
    let probe = out.get(8 * groups).copied().unwrap_or(f32::NAN);
    (LogitSummary { n_vocab: n, parts }, probe)
}
