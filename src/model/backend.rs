//! The operations decoding needs from a compute backend. The CPU backend runs the
//! network through the kernel table; the GPU backend (feature `gpu`) implements the
//! same trait, so the decoding loop is written once.
use super::{CrossKv, KvCache, Network};
use crate::decoding::filters::{argmax, log_prob, Greedy, LogitFilters};
use crate::Result;
use sotto_kernels::{Kernels, Pool};

pub trait Backend {
    /// An encoded window, ready for cross-attention (keys and values per decoder layer).
    type Cross;
    /// The self-attention cache of one hypothesis; cloning forks it.
    type Cache: Clone;
    /// Encodes one window of `n_mels × 3000` log-mel frames.
    fn encode(&self, mel: &[f32]) -> Result<Self::Cross>;
    fn new_cache(&self) -> Self::Cache;
    /// Appends `tokens` after the cache's contents and returns the logits of the
    /// positions `want` (indices into `tokens`).
    fn decode(
        &self,
        cross: &Self::Cross,
        cache: &mut Self::Cache,
        tokens: &[u32],
        want: &[usize],
    ) -> Result<Vec<Vec<f32>>>;

    /// A greedy step: appends `tokens` (at least one) like [`Backend::decode`] and
    /// returns the token chosen from the last position's logits after `filters` (given
    /// the tokens `sampled` so far in the window) with its log-probability, and, for
    /// `probe = Some((row, id))`, `log_softmax(logits[row])[id]` of the unfiltered
    /// row (the no-speech probability). The default reads the logits back; the GPU
    /// reduces them on the device and returns only these numbers.
    fn decode_greedy(
        &self,
        cross: &Self::Cross,
        cache: &mut Self::Cache,
        tokens: &[u32],
        filters: &LogitFilters,
        sampled: &[u32],
        probe: Option<(usize, u32)>,
    ) -> Result<Greedy> {
        let Some(last) = tokens.len().checked_sub(1) else {
            return Err(crate::Error::Invalid("a greedy step needs a token".into()));
        };
        let want: Vec<usize> = probe.iter().map(|p| p.0).chain([last]).collect();
        let mut rows = self.decode(cross, cache, tokens, &want)?;
        let mut logits = rows.pop().expect("rows asked");
        let probe = probe.map(|(_, id)| log_prob(&rows[0], id as usize));
        filters.apply(&mut logits, sampled);
        let token = argmax(&logits);
        Ok(Greedy {
            token: token as u32,
            logprob: log_prob(&logits, token),
            probe,
        })
    }
}

/// The network on the CPU kernels, with the pool of one transcription call.
pub struct Cpu<'a> {
    pub net: &'a Network,
    pub kernels: &'a Kernels,
    pub pool: &'a Pool,
}

impl Backend for Cpu<'_> {
    type Cross = CrossKv;
    type Cache = KvCache;

    fn encode(&self, mel: &[f32]) -> Result<CrossKv> {
        let enc = self.net.encode(self.kernels, self.pool, mel);
        let cross = self.net.cross_kv(self.kernels, self.pool, &enc);
        drop(enc);
        sotto_kernels::release_thread_scratch();
        super::release_freed_heap();
        Ok(cross)
    }

    fn new_cache(&self) -> KvCache {
        self.net.new_cache()
    }

    fn decode(
        &self,
        cross: &CrossKv,
        cache: &mut KvCache,
        tokens: &[u32],
        want: &[usize],
    ) -> Result<Vec<Vec<f32>>> {
        self.net
            .decode(self.kernels, self.pool, cross, cache, tokens, want)
    }
}
