//! The device: adapter choice, limits, buffers, and the pipeline cache keyed by
//! (shader, entry point, constants). Nothing here reads the environment: what the
//! CLI takes from `SOTTO_GPU_*` comes in as [`GpuOptions`].
use super::shaders::{self, GpuFeatures, Pass, Shader, Slot};
use crate::Error;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How [`Gpu::new`] opens the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GpuOptions {
    /// The optional features the kernels may use, of those the adapter offers
    /// (default: all).
    pub features: GpuFeatures,
    /// Split weight tensors by rows to fit this many bytes per binding when it is
    /// below the adapter's limit (default: the adapter's limit); lets tests split on
    /// any adapter. [`Gpu::set_max_binding`] changes it later.
    pub max_binding: Option<u64>,
}

impl Default for GpuOptions {
    fn default() -> GpuOptions {
        GpuOptions {
            features: GpuFeatures::ALL,
            max_binding: None,
        }
    }
}

impl GpuOptions {
    /// These options with at most `features`.
    pub fn with_features(mut self, features: GpuFeatures) -> GpuOptions {
        self.features = features;
        self
    }

    /// These options with weights split to `bytes` per binding.
    pub fn with_max_binding(mut self, bytes: Option<u64>) -> GpuOptions {
        self.max_binding = bytes;
        self
    }
}

/// Which adapters may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterPolicy {
    /// A real GPU only (discrete, integrated or virtual); software rasterisers refused.
    HardwareOnly,
    /// Any adapter, a software one (lavapipe, SwiftShader, WARP) included.
    AllowSoftware,
}

/// A pipeline with the bind group layout its bindings follow.
pub struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    /// The family (its binding table: [`Shader::bindings`]).
    pub shader: Shader,
}

type KernelKey = (Shader, GpuFeatures, &'static str, Vec<(&'static str, u32)>);

/// One wgpu device and queue with sotto's pipelines.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// WGSL `dot4I8Packed` is available (int8.wgsl `DOT4`; else an unpacked i32 dot).
    pub dot4: bool,
    /// Optional features the kernels use: those wanted that the device was opened
    /// with. Clearing one (tests) takes effect at the next [`Gpu::kernel`]; setting
    /// one the device lacks has no effect (kernels use `features ∩ enabled`).
    pub features: GpuFeatures,
    /// Those the device was opened with ([`Gpu::enabled`]).
    enabled: GpuFeatures,
    /// Bound where a kernel's optional input is absent.
    pub dummy: wgpu::Buffer,
    /// Weight tensors are split to fit this many bytes per buffer when it is below the
    /// adapter's binding limit ([`GpuOptions::max_binding`], [`Gpu::set_max_binding`]).
    binding_cap: u64,
    modules: Mutex<HashMap<(Shader, GpuFeatures), wgpu::ShaderModule>>,
    layouts: Mutex<HashMap<Shader, wgpu::BindGroupLayout>>,
    kernels: Mutex<HashMap<KernelKey, Arc<Kernel>>>,
    /// The first device error since the last [`Gpu::take_error`] (wgpu would panic).
    errors: Arc<Mutex<Option<String>>>,
    /// Bind groups already made, shared with the buffers' owners that evict them.
    pub(crate) binds: Arc<BindCache>,
    /// The uniform buffer every submission's parameters go to (bound with a dynamic
    /// offset, so a bind group serves every step); held from the write to the submit.
    pub(crate) params: Mutex<Option<wgpu::Buffer>>,
    /// x codes and scales of int8-activation layers, shared by every such layer (each
    /// quantizes and consumes them within one submission), grown on demand: the
    /// bind groups naming them stay valid from step to step.
    act_scratch: Mutex<Option<(wgpu::Buffer, wgpu::Buffer)>>,
    /// The device was opened with `TIMESTAMP_QUERY`.
    timestamps: bool,
    /// Pass timestamps of the submissions since the last read-back, while timing is
    /// on ([`Gpu::enable_timing`]); `None` (the default) costs nothing.
    timing: Mutex<Option<Timing>>,
}

/// Bytes of one kernel's parameters in the uniform buffer (the largest parameter
/// struct); each dispatch binds this much at its own dynamic offset.
pub(crate) const PARAM_BYTES: u64 = shaders::PARAM_BYTES as u64;

type BindKey = (
    wgpu::BindGroupLayout,
    wgpu::Buffer,
    Vec<(wgpu::Buffer, u64)>,
);

/// Bind groups by (layout, uniform buffer, storage buffers with their offsets).
/// A decoding step binds the same buffers every token; making its ~50 bind groups
/// anew cost ~160 µs of host time per token (measured on this machine's host,
/// lavapipe), more than the rest of recording and submitting together. Entries keep
/// their buffers alive, so per-window and per-hypothesis buffers are evicted by
/// their owners when dropped ([`BindCache::forget`]), and the whole cache is
/// dropped past [`BindCache::MAX`] entries (tests making many buffers).
#[derive(Default)]
pub(crate) struct BindCache {
    map: Mutex<HashMap<BindKey, wgpu::BindGroup>>,
}

impl BindCache {
    const MAX: usize = 4096;

    /// The bind group of `layout` with `uniform` (at dynamic offsets) then `bufs`.
    pub(crate) fn get(
        &self,
        device: &wgpu::Device,
        layout: &wgpu::BindGroupLayout,
        uniform: &wgpu::Buffer,
        bufs: &[(wgpu::Buffer, u64)],
    ) -> wgpu::BindGroup {
        let key = (layout.clone(), uniform.clone(), bufs.to_vec());
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = map.get(&key) {
            return g.clone();
        }
        if map.len() >= Self::MAX {
            map.clear();
        }
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: uniform,
                offset: 0,
                size: wgpu::BufferSize::new(PARAM_BYTES),
            }),
        }];
        for (i, (b, off)) in bufs.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b,
                    offset: *off,
                    size: None,
                }),
            });
        }
        let g = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout,
            entries: &entries,
        });
        map.insert(key, g.clone());
        g
    }

    /// Drops the bind groups that use any of `gone` (their owner is dropping them).
    pub(crate) fn forget(&self, gone: &[&wgpu::Buffer]) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|(_, u, bufs), _| {
            !gone.contains(&u) && bufs.iter().all(|(b, _)| !gone.contains(&b))
        });
    }

    /// Bind groups in the cache.
    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Which part of a transcription a [`Recorder`](super::Recorder) submission is
/// timed as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    /// The encoder of one window, the conv stem and cross-attention K/V included.
    Encoder,
    /// A decoder step (any decode call).
    Decode,
    #[default]
    Other,
}

/// Device time of the timed submissions (each from the start to the end of its
/// compute pass), by [`Phase`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuTimes {
    pub encoder_ns: u64,
    pub decode_ns: u64,
    pub other_ns: u64,
    /// Submissions timed (the invalid ones included).
    pub submissions: u64,
    /// Submissions whose timestamps were zero or went backwards (a driver that
    /// writes no real timestamps, or a counter that wrapped): not counted above.
    pub invalid: u64,
}

impl GpuTimes {
    /// Something was timed and every timestamp was plausible: the figures mean
    /// something.
    pub fn valid(&self) -> bool {
        self.submissions > 0 && self.invalid == 0
    }
}

/// Submissions timed between two read-backs: two queries each.
const TIMED_PER_FLUSH: u32 = 512;

struct Timing {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    staging: wgpu::Buffer,
    /// The phase of each pair of queries written since the last flush.
    pending: Vec<Phase>,
    times: GpuTimes,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

fn is_software(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu
}

impl Gpu {
    /// Opens the best adapter `policy` allows, using at most `options.features`;
    /// [`Error::Device`] says why none could be used.
    pub fn new(policy: AdapterPolicy, options: &GpuOptions) -> crate::Result<Gpu> {
        Gpu::open(policy, options).map_err(Error::Device)
    }

    fn open(policy: AdapterPolicy, options: &GpuOptions) -> Result<Gpu, String> {
        let want = options.features;
        // Not `…_from_env`: the library reads no environment variable (WGPU_*).
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        if adapters.is_empty() {
            return Err("no GPU adapter found (no Vulkan/Metal/DX12 driver)".into());
        }
        // Best first: discrete, integrated, virtual, other, software.
        let rank = |a: &wgpu::Adapter| match a.get_info().device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        };
        adapters.sort_by_key(rank);
        let names: Vec<String> = adapters
            .iter()
            .map(|a| {
                let i = a.get_info();
                format!("{} ({:?}, {:?})", i.name, i.device_type, i.backend)
            })
            .collect();
        let adapter = adapters
            .into_iter()
            .find(|a| policy == AdapterPolicy::AllowSoftware || !is_software(&a.get_info()))
            .ok_or_else(|| {
                format!(
                    "only software adapters found ({}); use --device gpu to run on one anyway",
                    names.join(", ")
                )
            })?;
        let info = adapter.get_info();
        let dot4 = instance
            .wgsl_language_features()
            .contains(wgpu::WgslLanguageFeatures::Packed4x8IntegerDotProduct);
        let offered = adapter.features();
        let enabled = want.and(GpuFeatures {
            subgroups: offered.contains(wgpu::Features::SUBGROUP),
            f16: offered.contains(wgpu::Features::SHADER_F16),
        });
        let mut required_features = wgpu::Features::empty();
        if enabled.subgroups {
            required_features |= wgpu::Features::SUBGROUP;
        }
        if enabled.f16 {
            required_features |= wgpu::Features::SHADER_F16;
        }
        // Costs nothing until a pass asks for timestamps (only while timing is on).
        let timestamps = offered.contains(wgpu::Features::TIMESTAMP_QUERY);
        if timestamps {
            required_features |= wgpu::Features::TIMESTAMP_QUERY;
        }
        let have = adapter.limits();
        // Ask for the adapter's own buffer limits: big tensors need them.
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: have.max_storage_buffer_binding_size,
            max_buffer_size: have.max_buffer_size,
            ..wgpu::Limits::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("sotto"),
            required_features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| format!("cannot open {}: {e}", info.name))?;
        // wgpu's default for an error outside an error scope (out of memory, a lost
        // device) is to panic: keep the first one instead, for the next read-back or
        // upload check to return as an error.
        let errors: Arc<Mutex<Option<String>>> = Arc::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut first = sink.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(|| e.to_string());
        }));
        let sink = errors.clone();
        device.set_device_lost_callback(move |reason, message| {
            if reason != wgpu::DeviceLostReason::Destroyed {
                let mut first = sink.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| format!("device lost ({reason:?}): {message}"));
            }
        });
        let dummy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dummy"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            dot4,
            features: enabled,
            enabled,
            dummy,
            errors,
            binding_cap: options.max_binding.unwrap_or(u64::MAX),
            modules: Mutex::default(),
            layouts: Mutex::default(),
            kernels: Mutex::default(),
            binds: Arc::default(),
            params: Mutex::default(),
            act_scratch: Mutex::default(),
            timestamps,
            timing: Mutex::default(),
        })
    }

    /// e.g. "NVIDIA H100 (DiscreteGpu, Vulkan)".
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.device_type, self.info.backend
        )
    }

    pub fn is_software(&self) -> bool {
        is_software(&self.info)
    }

    /// The optional features the device was opened with (those asked for that the
    /// adapter offers).
    pub fn enabled(&self) -> GpuFeatures {
        self.enabled
    }

    /// Buffers for `code_bytes` of int8 x codes and `scales` x scales (at least).
    pub(crate) fn act_buffers(
        &self,
        code_bytes: u64,
        scales: usize,
    ) -> (wgpu::Buffer, wgpu::Buffer) {
        let mut held = self.act_scratch.lock().unwrap_or_else(|e| e.into_inner());
        let (c0, s0) = match &*held {
            Some((c, s)) if c.size() >= code_bytes && s.size() >= scales as u64 * 4 => {
                return (c.clone(), s.clone());
            }
            Some((c, s)) => {
                self.binds.forget(&[c, s]);
                (c.size(), s.size() / 4)
            }
            None => (0, 0),
        };
        let c = self.buffer("x codes", code_bytes.max(c0).next_power_of_two());
        let s = self.floats("x scales", scales.max(s0 as usize).next_power_of_two());
        *held = Some((c.clone(), s.clone()));
        (c, s)
    }

    /// Bind groups cached for reuse (each holds its buffers until they are dropped
    /// by their owner or the cache is full).
    pub fn cached_bind_groups(&self) -> usize {
        self.binds.len()
    }

    /// Whether the decoder keeps its K/V caches in f16 (the shader-f16 variant),
    /// decided when a cache is made; the caches remember it.
    pub fn half_kv(&self) -> bool {
        self.features.and(self.enabled).f16
    }

    /// Largest buffer one weight binding may cover.
    pub fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
            .min(self.binding_cap)
    }

    /// Lowers [`Gpu::max_binding`] to `bytes` for the weights uploaded afterwards (a
    /// value above the adapter's limit changes nothing).
    pub fn set_max_binding(&mut self, bytes: u64) {
        self.binding_cap = bytes;
    }

    /// A storage buffer of `bytes` (rounded up to 4), zero-filled.
    pub fn buffer(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// A storage buffer of f32s.
    pub fn floats(&self, label: &str, n: usize) -> wgpu::Buffer {
        self.buffer(label, n as u64 * 4)
    }

    /// A storage buffer holding `data`.
    pub fn upload_f32(&self, label: &str, data: &[f32]) -> wgpu::Buffer {
        let b = self.floats(label, data.len());
        if !data.is_empty() {
            self.queue.write_buffer(&b, 0, bytemuck::cast_slice(data));
        }
        b
    }

    /// Copies `n` floats from `src` at float offset `off` back to the host (waits);
    /// panics if the device failed. For tests only: the network uses
    /// [`Gpu::try_read_f32`], and nothing in the library calls this.
    pub fn read_f32(&self, src: &wgpu::Buffer, off: usize, n: usize) -> Vec<f32> {
        self.try_read_f32(src, off, n)
            .unwrap_or_else(|e| panic!("GPU read-back failed: {e}"))
    }

    /// [`Gpu::read_f32`], or the device's error (out of memory, device lost, a
    /// failed mapping) since the last check.
    pub fn try_read_f32(
        &self,
        src: &wgpu::Buffer,
        off: usize,
        n: usize,
    ) -> Result<Vec<f32>, String> {
        if n == 0 {
            return self.check().map(|()| Vec::new());
        }
        let bytes = n as u64 * 4;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, off as u64 * 4, &staging, 0, bytes);
        self.queue.submit([enc.finish()]);
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait();
        self.check()?;
        match rx.recv() {
            Ok(Ok(())) => {}
            other => return Err(format!("mapping the read-back failed: {other:?}")),
        }
        let view = slice
            .get_mapped_range()
            .map_err(|e| format!("mapping the read-back failed: {e:?}"))?;
        let out = bytemuck::cast_slice::<u8, f32>(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// Keeps `message` as the device's error unless one is kept already: the next
    /// [`Gpu::check`] (upload check, encode, read-back) returns it.
    pub(crate) fn fail(&self, message: String) {
        let mut first = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(message);
    }

    /// Takes the first device error since the last call, if any.
    pub fn take_error(&self) -> Option<String> {
        self.errors.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// `Err` with [`Gpu::take_error`]'s error, if any.
    pub fn check(&self) -> Result<(), String> {
        self.take_error().map_or(Ok(()), Err)
    }

    /// Whether the device can time its passes ([`Gpu::enable_timing`]).
    pub fn has_timestamps(&self) -> bool {
        self.timestamps
    }

    /// Turns timing of every [`Recorder`](super::Recorder) submission on or off (off
    /// by default; off drops what was not taken). Returns whether timing is on: false
    /// where the adapter has no timestamp queries.
    pub fn enable_timing(&self, on: bool) -> bool {
        let mut timing = self.timing.lock().unwrap_or_else(|e| e.into_inner());
        if !(on && self.timestamps) {
            *timing = None;
            return false;
        }
        if timing.is_none() {
            let count = 2 * TIMED_PER_FLUSH;
            let bytes = count as u64 * wgpu::QUERY_SIZE as u64;
            let buffer = |label, usage| {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: bytes,
                    usage,
                    mapped_at_creation: false,
                })
            };
            *timing = Some(Timing {
                set: self.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("pass timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count,
                }),
                resolve: buffer(
                    "timestamps",
                    wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                ),
                staging: buffer(
                    "timestamps readback",
                    wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                ),
                pending: Vec::new(),
                times: GpuTimes::default(),
            });
        }
        true
    }

    /// The device time since timing was enabled or last taken, then zero; `None`
    /// while timing is off. Waits for the submissions still running.
    pub fn take_times(&self) -> Option<GpuTimes> {
        let mut timing = self.timing.lock().unwrap_or_else(|e| e.into_inner());
        let t = timing.as_mut()?;
        self.flush_timing(t);
        Some(std::mem::take(&mut t.times))
    }

    /// Encodes `pass` into one compute pass, timed as `phase` while timing is on, and
    /// submits it. The timing lock is held until the submission, so that a read-back
    /// never resolves a query whose pass is not yet submitted.
    pub(crate) fn submit_pass(&self, phase: Phase, pass: impl FnOnce(&mut wgpu::ComputePass<'_>)) {
        let mut timing = self.timing.lock().unwrap_or_else(|e| e.into_inner());
        let mut enc = self.device.create_command_encoder(&Default::default());
        let writes = timing.as_mut().map(|t| {
            if t.pending.len() as u32 == TIMED_PER_FLUSH {
                self.flush_timing(t);
            }
            let i = 2 * t.pending.len() as u32;
            t.pending.push(phase);
            wgpu::ComputePassTimestampWrites {
                query_set: &t.set,
                beginning_of_pass_write_index: Some(i),
                end_of_pass_write_index: Some(i + 1),
            }
        });
        {
            let mut p = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: writes,
            });
            pass(&mut p);
        }
        self.queue.submit([enc.finish()]);
    }

    /// Resolves and reads back the pending timestamps into `t.times` (waits).
    fn flush_timing(&self, t: &mut Timing) {
        let n = t.pending.len() as u32;
        if n == 0 {
            return;
        }
        let bytes = 2 * n as u64 * wgpu::QUERY_SIZE as u64;
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.resolve_query_set(&t.set, 0..2 * n, &t.resolve, 0);
        enc.copy_buffer_to_buffer(&t.resolve, 0, &t.staging, 0, bytes);
        self.queue.submit([enc.finish()]);
        let slice = t.staging.slice(..bytes);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait();
        let phases = std::mem::take(&mut t.pending);
        t.times.submissions += phases.len() as u64;
        let mapped = matches!(rx.recv(), Ok(Ok(())));
        let stamps: Option<Vec<u64>> =
            mapped
                .then(|| slice.get_mapped_range().ok())
                .flatten()
                .map(|view| {
                    view.chunks_exact(8)
                        .map(bytemuck::pod_read_unaligned::<u64>)
                        .collect()
                });
        if mapped {
            t.staging.unmap();
        }
        let Some(stamps) = stamps else {
            t.times.invalid += phases.len() as u64;
            return;
        };
        let period = self.queue.get_timestamp_period() as f64;
        for (phase, pair) in phases.iter().zip(stamps.chunks_exact(2)) {
            let (begin, end) = (pair[0], pair[1]);
            if begin == 0 || end < begin {
                t.times.invalid += 1;
                continue;
            }
            let ns = ((end - begin) as f64 * period).round() as u64;
            match phase {
                Phase::Encoder => t.times.encoder_ns += ns,
                Phase::Decode => t.times.decode_ns += ns,
                Phase::Other => t.times.other_ns += ns,
            }
        }
    }

    /// Blocks until the queue is idle.
    pub fn wait(&self) {
        // An error here means the device was lost; the next call reports it.
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
    }

    fn module(&self, shader: Shader, variant: GpuFeatures) -> wgpu::ShaderModule {
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        modules
            .entry((shader, variant))
            .or_insert_with(|| {
                self.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(shader.name()),
                        source: wgpu::ShaderSource::Wgsl(shader.source_for(variant).into()),
                    })
            })
            .clone()
    }

    fn bind_layout(&self, shader: Shader) -> wgpu::BindGroupLayout {
        let mut layouts = self.layouts.lock().unwrap_or_else(|e| e.into_inner());
        layouts
            .entry(shader)
            .or_insert_with(|| {
                let entries: Vec<wgpu::BindGroupLayoutEntry> = shader
                    .bindings()
                    .iter()
                    .map(|b| &b.slot)
                    .enumerate()
                    .map(|(i, slot)| wgpu::BindGroupLayoutEntry {
                        binding: i as u32,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: match slot {
                                Slot::Uniform => wgpu::BufferBindingType::Uniform,
                                Slot::Read => wgpu::BufferBindingType::Storage { read_only: true },
                                Slot::ReadWrite => {
                                    wgpu::BufferBindingType::Storage { read_only: false }
                                }
                            },
                            // The parameters: one bind group serves every step.
                            has_dynamic_offset: *slot == Slot::Uniform,
                            min_binding_size: None,
                        },
                        count: None,
                    })
                    .collect();
                self.device
                    .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                        label: Some(shader.name()),
                        entries: &entries,
                    })
            })
            .clone()
    }

    /// The pipeline for (`shader`, `entry`, `constants`) in the variant of
    /// [`Gpu::features`] (a subgroup entry point in place of `entry` where the family
    /// has one), compiled on first use. `constants` are the per-call overrides
    /// ([`Shader::call_overrides`]); the family's own ([`Shader::constants`]) are
    /// added here. An error if the family needs a feature the device lacks.
    pub fn kernel(
        &self,
        shader: Shader,
        entry: &'static str,
        constants: &[(&'static str, u32)],
    ) -> Result<Arc<Kernel>, String> {
        if !self.enabled.covers(shader.requires()) {
            return Err(format!(
                "{}.wgsl needs {:?}, the device has {:?}",
                shader.name(),
                shader.requires(),
                self.enabled
            ));
        }
        let variant = shader.variant(self.features.and(self.enabled));
        let entry = match shader.subgroup_entry(entry) {
            Some(e) if variant.subgroups => e,
            _ => entry,
        };
        let key = (shader, variant, entry, constants.to_vec());
        if let Some(k) = self
            .kernels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(k.clone());
        }
        let module = self.module(shader, variant);
        let layout = self.bind_layout(shader);
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(shader.name()),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let family = shader
            .constants()
            .iter()
            .filter(|c| c.pass == Pass::Override);
        let constants: Vec<(&str, f64)> = family
            .map(|c| (c.name, c.value as f64))
            .chain(constants.iter().map(|&(n, v)| (n, v as f64)))
            .collect();
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(shader.name()),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &constants,
                    // Every kernel writes its workgroup memory before reading it.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        let k = Arc::new(Kernel {
            pipeline,
            layout,
            shader,
        });
        self.kernels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, k.clone());
        Ok(k)
    }
}
