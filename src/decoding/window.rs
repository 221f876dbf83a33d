//! Decodes one 30-second window: the prompt, then token by token (greedy at
//! temperature 0, sampled above), with the logit filters.
use super::filters::{argmax, log_prob, LogitFilters};
use crate::model::{Backend, Network};
use crate::Result;

/// What one decoding attempt of a window produced.
#[derive(Clone, Debug, Default)]
pub struct WindowResult {
    /// Sampled tokens, end of text excluded.
    pub tokens: Vec<u32>,
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
    pub temperature: f32,
    /// zlib compression ratio of the text (set by the caller).
    pub compression_ratio: f32,
    /// Log-probability of each of `tokens` when chosen; NaN for forced ones.
    pub logprobs: Vec<f32>,
}

/// A small deterministic generator for temperature sampling (splitmix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn sample(logits: &[f32], temperature: f32, rng: &mut Rng) -> usize {
    let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let w: Vec<f64> = logits
        .iter()
        .map(|&l| (((l - m) / temperature) as f64).exp())
        .collect();
    let total: f64 = w.iter().sum();
    let mut r = rng.next_f64() * total;
    for (i, &p) in w.iter().enumerate() {
        if p > 0.0 {
            if r < p {
                return i;
            }
            r -= p;
        }
    }
    argmax(logits)
}

pub(crate) struct WindowDecoder<'a, B: Backend> {
    pub backend: &'a B,
    /// Positions of the decoder's context.
    pub n_ctx: usize,
    pub filters: &'a LogitFilters,
    /// Most tokens sampled per window (openai: n_text_ctx / 2).
    pub sample_len: usize,
    /// Checked before every decoder step.
    pub abort: Option<&'a crate::Abort>,
}

impl<B: Backend> WindowDecoder<'_, B> {
    fn check_abort(&self) -> Result<()> {
        match self.abort {
            Some(a) if a.is_aborted() => Err(crate::Error::Aborted),
            _ => Ok(()),
        }
    }

    /// Decodes after `prompt` (previous text, the start-of-transcript sequence and
    /// `forced`); `sot_index` is where `<|startoftranscript|>` sits, whose logits give
    /// the no-speech probability. `forced` (a prefix) counts as already chosen — the
    /// window's result starts with it and the timestamp rules see it — but is not scored.
    pub fn decode(
        &self,
        cross: &B::Cross,
        prompt: &[u32],
        sot_index: usize,
        forced: &[u32],
        temperature: f32,
        rng: &mut Rng,
    ) -> Result<WindowResult> {
        if temperature == 0.0 {
            return self.decode_greedy(cross, prompt, sot_index, forced);
        }
        let n_ctx = self.n_ctx;
        let eot = self.filters.tokens.eot;
        let mut cache = self.backend.new_cache();
        let want = [sot_index, prompt.len() - 1];
        let mut first = self.backend.decode(cross, &mut cache, prompt, &want)?;
        let (Some(mut logits), Some(sot_logits)) = (first.pop(), first.pop()) else {
            return Err(crate::Error::Invalid(
                "the decoder returned no logits".into(),
            ));
        };
        let sot_logits = &sot_logits;
        let no_speech = self.filters.tokens.no_speech as usize;
        let no_speech_prob = if no_speech < sot_logits.len() {
            log_prob(sot_logits, no_speech).exp()
        } else {
            0.0
        };

        let mut tokens: Vec<u32> = forced.to_vec();
        let mut logprobs = vec![f32::NAN; forced.len()];
        let mut sum_logprob = 0f32;
        loop {
            self.filters.apply(&mut logits, &tokens);
            let next = sample(&logits, temperature, rng);
            let lp = log_prob(&logits, next);
            sum_logprob += lp;
            if next as u32 == eot {
                break;
            }
            tokens.push(next as u32);
            logprobs.push(lp);
            if tokens.len() >= self.sample_len || prompt.len() + tokens.len() + 1 >= n_ctx {
                break;
            }
            self.check_abort()?;
            logits = self
                .backend
                .decode(cross, &mut cache, &[next as u32], &[0])?
                .pop()
                .unwrap_or_default();
        }
        let avg_logprob = sum_logprob / ((tokens.len() - forced.len()) as f32 + 1.0);
        Ok(WindowResult {
            tokens,
            avg_logprob,
            no_speech_prob,
            temperature,
            compression_ratio: 0.0,
            logprobs,
        })
    }

    /// Temperature 0: each step asks the backend for its greedy choice only (on a GPU
    /// the logits stay on the device).
    fn decode_greedy(
        &self,
        cross: &B::Cross,
        prompt: &[u32],
        sot_index: usize,
        forced: &[u32],
    ) -> Result<WindowResult> {
        let eot = self.filters.tokens.eot;
        let no_speech = self.filters.tokens.no_speech;
        let probe = ((no_speech as usize) < self.filters.n_vocab).then_some((sot_index, no_speech));
        let mut cache = self.backend.new_cache();
        let mut step =
            self.backend
                .decode_greedy(cross, &mut cache, prompt, self.filters, forced, probe)?;
        let no_speech_prob = step.probe.map_or(0.0, f32::exp);
        let mut tokens: Vec<u32> = forced.to_vec();
        let mut logprobs = vec![f32::NAN; forced.len()];
        let mut sum_logprob = 0f32;
        loop {
            sum_logprob += step.logprob;
            if step.token == eot {
                break;
            }
            tokens.push(step.token);
            logprobs.push(step.logprob);
            if tokens.len() >= self.sample_len || prompt.len() + tokens.len() + 1 >= self.n_ctx {
                break;
            }
            self.check_abort()?;
            step = self.backend.decode_greedy(
                cross,
                &mut cache,
                &[step.token],
                self.filters,
                &tokens,
                None,
            )?;
        }
        let avg_logprob = sum_logprob / ((tokens.len() - forced.len()) as f32 + 1.0);
        Ok(WindowResult {
            tokens,
            avg_logprob,
            no_speech_prob,
            temperature: 0.0,
            compression_ratio: 0.0,
            logprobs,
        })
    }
}
