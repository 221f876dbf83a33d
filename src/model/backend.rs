//! The interface the network is written against. A backend owns its weights
//! ([`WeightKinds`]), its activation buffers (named by [`Buf`], stored as the
//! backend likes: host slices for the CPU, device buffers for the GPU) and the
//! per-window and per-hypothesis state ([`Backend::Cross`], [`Backend::Cache`]).
//! The network ([`super::network`]) runs a pass of operations on it; the CPU
//! executes each operation at once, the GPU records them and submits at the end.
use super::plan::{Dims, Layers, WeightKinds};
use crate::decoding::filters::{argmax, log_prob, Greedy, LogitFilters};
use crate::Result;

/// The activation buffers the network names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Buf {
    /// One window of log-mel frames, channel-major (`n_mels × frames`).
    Mel,
    /// The conv stem's im2col columns.
    Col,
    /// The first convolution's output (`frames × d`).
    Conv,
    /// The residual stream.
    X,
    /// Normed rows, then the attention heads' output.
    H,
    /// Four values per row of `d`: q|k|v, the FFN's hidden layer, or the spare
    /// of a residual projection.
    Wide,
    /// Logit rows.
    Logits,
}

impl Buf {
    pub const COUNT: usize = 7;
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a pass computes (the GPU times them apart; the CPU returns the encoder's
/// memory after a window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PassKind {
    Encoder,
    Decoder,
}

/// Rows of f32 activations: row `i` starts at float `off + i·stride` of `buf`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rows {
    pub buf: Buf,
    pub off: usize,
    pub stride: usize,
}

impl Rows {
    /// Rows from the start of `buf`.
    pub fn of(buf: Buf, stride: usize) -> Rows {
        Rows {
            buf,
            off: 0,
            stride,
        }
    }
    /// The same rows `floats` further on.
    pub fn at(self, floats: usize) -> Rows {
        Rows {
            off: self.off + floats,
            ..self
        }
    }
}

/// What a linear layer does after its dot products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Epilogue {
    Plain,
    Gelu,
    /// `y += x·Wᵀ + b` (residual connections). `spare` is a buffer the network
    /// no longer needs at this point: a backend that cannot fuse the addition
    /// computes into it first (at offset 0, rows of `n`).
    Add {
        spare: Buf,
    },
}

/// Which rows of a table an embedding reads.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Lookup<'a> {
    /// Row `ids[i]` for output row `i`.
    Ids(&'a [u32]),
    /// Rows `first ..` in order.
    From(usize),
}

/// Where an attention's keys and values are.
pub(crate) enum Keys<'a, B: Backend + ?Sized> {
    /// f32 rows of one buffer: key `j` at row `j` of `kv`, its value `v_off`
    /// floats further on.
    Rows { kv: Rows, v_off: usize },
    /// Decoder layer `layer`'s cross-attention keys and values of a window.
    Cross(&'a B::Cross, usize),
    /// Decoder layer `layer`'s self-attention cache.
    Cache(&'a B::Cache, usize),
}

/// Heads and positions of one attention.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attention {
    pub n_q: usize,
    pub n_kv: usize,
    pub heads: usize,
    /// Query row `i` sees keys `..= causal_offset + i` when set.
    pub causal_offset: Option<usize>,
}

/// A compute backend: the model's weights on it, and passes that run the network.
pub(crate) trait Backend {
    type W: WeightKinds;
    /// An encoded window, ready for cross-attention (keys and values per decoder layer).
    type Cross;
    /// The self-attention cache of one hypothesis; cloning forks it.
    type Cache: Clone;
    type Pass<'p>: Pass<Self>
    where
        Self: 'p;

    fn layers(&self) -> &Layers<Self::W>;
    fn dims(&self) -> &Dims {
        &self.layers().dims
    }
    /// A pass with the buffers `sizes` (floats each) available.
    fn pass(&self, kind: PassKind, sizes: &[(Buf, usize)]) -> Result<Self::Pass<'_>>;
    fn new_cross(&self) -> Self::Cross;
    fn new_cache(&self) -> Self::Cache;
    fn cache_len(&self, cache: &Self::Cache) -> usize;
    fn set_cache_len(&self, cache: &mut Self::Cache, len: usize);
    /// Makes `dst` a copy of `src` (length included) by copying only positions
    /// `from .. cache_len(src)` of every layer: `dst` already holds the first
    /// `from` (beam search reorders hypotheses that share a prefix).
    fn copy_cache(&self, src: &Self::Cache, dst: &mut Self::Cache, from: usize);
    /// The kernel set for host-side row work of the decoding (beam search's
    /// log-sum-exp): the CPU backend's own; a device backend the best this CPU has.
    fn host_kernels(&self) -> &sotto_kernels::Kernels {
        static KERNELS: std::sync::OnceLock<sotto_kernels::Kernels> = std::sync::OnceLock::new();
        KERNELS.get_or_init(sotto_kernels::Kernels::detect)
    }
}

type Linear<B> = <<B as Backend>::W as WeightKinds>::Linear;
type Norm<B> = <<B as Backend>::W as WeightKinds>::Norm;
type Table<B> = <<B as Backend>::W as WeightKinds>::Table;

/// The operations of one pass. Shapes are the network's business: a backend
/// may rely on them (rows within the buffers the pass was opened with).
pub(crate) trait Pass<B: Backend + ?Sized> {
    /// Copies a log-mel window into [`Buf::Mel`].
    fn write_mel(&mut self, mel: &[f32]);
    /// `buf` is not needed again in this pass.
    fn release(&mut self, _buf: Buf) {}
    /// A convolution of kernel 3, padding 1: `src(ch, t)` at
    /// `ch·ch_stride + t·t_stride` of `src` (`channels × t_in`), input frame
    /// `stride·t + j − 1` under tap `j`; through im2col columns in `col` and `w`
    /// (`[n × channels·3]`) into `out` (`t_out` rows), then `epi`.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        w: &Linear<B>,
        src: Buf,
        channels: usize,
        t_in: usize,
        strides: (usize, usize),
        stride: usize,
        t_out: usize,
        col: Buf,
        out: Rows,
        epi: Epilogue,
    );
    /// `y[m × n] = x[m × k] · wᵀ + b`, then `epi`.
    fn linear(&mut self, w: &Linear<B>, x: Rows, m: usize, y: Rows, epi: Epilogue);
    /// `y[m × rows] = x[m × cols] · tableᵀ` (the tied output projection).
    fn project(&mut self, t: &Table<B>, x: Rows, m: usize, y: Rows);
    fn layer_norm(&mut self, n: &Norm<B>, x: Rows, rows: usize, y: Rows);
    /// Writes (or with `accumulate` adds) `n` table rows into `y`.
    fn embed(&mut self, t: &Table<B>, rows: Lookup, n: usize, y: Rows, accumulate: bool);
    /// Multi-head attention of the query rows `q` (width `d`) over `kv` into `out`.
    fn attention(&mut self, q: Rows, kv: Keys<B>, a: Attention, out: Rows);
    /// Stores `n` rows of keys|values (`2d` wide, keys first) at positions
    /// `pos ..` of decoder layer `layer`'s cache.
    fn store_cache(&mut self, cache: &mut B::Cache, layer: usize, pos: usize, kv: Rows, n: usize);
    /// Stores the window's keys|values (`audio_ctx` rows `2d` wide) of decoder layer `layer`.
    fn store_cross(&mut self, cross: &mut B::Cross, layer: usize, kv: Rows);
    /// Cross-attention probabilities of head `head` of decoder layer `layer`
    /// for the `n_q` query rows `q` (width `d`): row `i` of `out` (`keys`
    /// floats) is `softmax_j(q_i·k_j / √d_head)` over the window's first `keys`
    /// positions only (word timestamps). A backend that cannot read them back
    /// says so.
    #[allow(clippy::too_many_arguments)]
    fn cross_weights(
        &mut self,
        _q: Rows,
        _cross: &B::Cross,
        _layer: usize,
        _head: usize,
        _n_q: usize,
        _keys: usize,
        _out: Rows,
    ) -> Result<()> {
        Err(crate::Error::Invalid(
            "this backend cannot return cross-attention weights".into(),
        ))
    }
    /// Ends the pass: every operation done (or failed with an error).
    fn finish(self) -> Result<()>;
    /// Ends the pass and returns `n` rows of `width` floats.
    fn read(self, x: Rows, n: usize, width: usize) -> Result<Vec<Vec<f32>>>;
    /// Ends a greedy decoding step whose logit rows are `logits` (the last one
    /// the step's, the first one `probe`'s row when set): the token `filters`
    /// keep with the highest logit (given the tokens `sampled` so far) and its
    /// log-probability, and `log_softmax(probe row)[probe id]`. The default reads
    /// the logits back and filters them with their log-sum-exp in one SIMD pass
    /// of `kernels` (`LogitFilters::apply_lse`, as beam search does); the GPU
    /// reduces them on the device.
    fn greedy(
        self,
        logits: Rows,
        rows: usize,
        filters: &LogitFilters,
        sampled: &[u32],
        probe: Option<u32>,
        kernels: &sotto_kernels::Kernels,
    ) -> Result<Greedy>
    where
        Self: Sized,
    {
        let n_vocab = filters.n_vocab;
        let mut all = self.read(logits, rows, n_vocab)?;
        let Some(mut last) = all.pop() else {
            return Err(crate::Error::Invalid("a greedy step needs a row".into()));
        };
        let probe = probe.map(|id| {
            let row = all.first().unwrap_or(&last);
            match row.get(id as usize) {
                Some(_) => log_prob(row, id as usize),
                None => f32::NAN,
            }
        });
        let lse = filters.apply_lse(&mut last, sampled, kernels);
        let token = argmax(&last);
        Ok(Greedy {
            token: token as u32,
            logprob: last[token] - lse,
            probe,
        })
    }
}
