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
    /// Beam search at temperature 0 and best-of sampling above it.
    pub search: Search,
}

/// openai-whisper's beam search and best-of settings ([`crate::Options`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Search {
    /// Hypotheses kept per step at temperature 0; 1 is greedy.
    pub beam_size: usize,
    /// Finished hypotheses collected before stopping: `beam_size · patience`.
    pub patience: f32,
    /// `None` ranks by log-probability / length, else by
    /// log-probability / ((5 + length) / 6)^α.
    pub length_penalty: Option<f32>,
    /// Sampled candidates per temperature above 0.
    pub best_of: usize,
}

impl Default for Search {
    fn default() -> Search {
        Search {
            beam_size: 1,
            patience: 1.0,
            length_penalty: None,
            best_of: 1,
        }
    }
}

impl Search {
    /// openai-whisper's `MaximumLikelihoodRanker`: the index of the best
    /// `(tokens, sum_logprob)` (tokens without the end of text).
    fn rank(&self, candidates: &[(Vec<u32>, f32)]) -> usize {
        let score = |(t, lp): &(Vec<u32>, f32)| {
            let len = t.len() as f32;
            let penalty = match self.length_penalty {
                None => len.max(1.0),
                Some(alpha) => ((5.0 + len) / 6.0).powf(alpha),
            };
            lp / penalty
        };
        let mut best = 0;
        for (i, c) in candidates.iter().enumerate() {
            if score(c) > score(&candidates[best]) {
                best = i;
            }
        }
        best
    }
}

/// What the filters see of a hypothesis: the prefix, then its sampled tokens.
fn with_forced<'t>(forced: &[u32], sampled: &'t [u32]) -> std::borrow::Cow<'t, [u32]> {
    if forced.is_empty() {
        std::borrow::Cow::Borrowed(sampled)
    } else {
        std::borrow::Cow::Owned([forced, sampled].concat())
    }
}

/// A result of sampled tokens only, with the prefix put in front (its
/// log-probabilities NaN, as the greedy path gives them).
fn prefixed(forced: &[u32], mut r: WindowResult) -> WindowResult {
    if !forced.is_empty() {
        r.tokens.splice(0..0, forced.iter().copied());
        r.logprobs.splice(0..0, forced.iter().map(|_| f32::NAN));
    }
    r
}

/// The `k` best entries of `logprobs` (highest first, lower index on ties).
/// Once `k` are held, a chunk of 16 entries none of which beats the `k`-th
/// (a test without branches, which the compiler vectorizes) is passed over
/// whole: beam search takes this per hypothesis and step over the
/// vocabulary, where nearly every chunk is passed over.
fn top_k(logprobs: &[f32], k: usize) -> Vec<(usize, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut top: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
    // The k-th entry's value while `top` is full.
    let mut floor = f32::NEG_INFINITY;
    for (c, chunk) in logprobs.chunks(16).enumerate() {
        let full = top.len() == k;
        if full
            && chunk
                .iter()
                .fold(0u32, |a, &v| a | u32::from(v > floor || v.is_nan()))
                == 0
        {
            continue;
        }
        for (j, &v) in chunk.iter().enumerate() {
            if top.len() == k && v <= floor {
                continue;
            }
            let at = top.partition_point(|e| e.1 >= v);
            top.insert(at, (16 * c + j, v));
            top.truncate(k);
            if top.len() == k {
                floor = top[k - 1].1;
            }
        }
    }
    top
}

/// One live hypothesis of a beam search: its sampled tokens and their summed
/// log-probability; its self-attention cache sits at the same index.
#[derive(Clone, Debug)]
struct Hyp {
    tokens: Vec<u32>,
    sum: f32,
    /// Each token's log-probability when chosen.
    logprobs: Vec<f32>,
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
            if self.search.beam_size > 1 {
                return self.decode_beam(cross, prompt, sot_index, forced);
            }
            return self.decode_greedy(cross, prompt, sot_index, forced);
        }
        if self.search.best_of > 1 {
            return self.decode_best_of(cross, prompt, sot_index, forced, temperature, rng);
        }
        let eot = self.filters.tokens.eot;
        let kernels = self.backend.host_kernels();
        let (mut cache, mut logits, no_speech_prob) = self.start(cross, prompt, sot_index)?;
        let mut tokens: Vec<u32> = forced.to_vec();
        let mut logprobs = vec![f32::NAN; forced.len()];
        let mut sum_logprob = 0f32;
        loop {
            let lse = self.filters.apply_lse(&mut logits, &tokens, kernels);
            let next = sample(&logits, temperature, rng);
            let lp = logits[next] - lse;
            sum_logprob += lp;
            if next as u32 == eot {
                break;
            }
            tokens.push(next as u32);
            logprobs.push(lp);
            if self.full(prompt, tokens.len() - forced.len()) {
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
            if self.full(prompt, tokens.len() - forced.len()) {
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

    /// The prompt through a fresh cache: that cache, the logits after the
    /// prompt and the no-speech probability (from `<|startoftranscript|>`'s row).
    fn start(
        &self,
        cross: &B::Cross,
        prompt: &[u32],
        sot_index: usize,
    ) -> Result<(B::Cache, Vec<f32>, f32)> {
        let mut cache = self.backend.new_cache();
        let want = [sot_index, prompt.len() - 1];
        let mut first = self.backend.decode(cross, &mut cache, prompt, &want)?;
        let (Some(logits), Some(sot_logits)) = (first.pop(), first.pop()) else {
            return Err(crate::Error::Invalid(
                "the decoder returned no logits".into(),
            ));
        };
        let no_speech = self.filters.tokens.no_speech as usize;
        let no_speech_prob = if no_speech < sot_logits.len() {
            log_prob(&sot_logits, no_speech).exp()
        } else {
            0.0
        };
        Ok((cache, logits, no_speech_prob))
    }

    /// Whether a hypothesis of `n` sampled tokens may not grow further.
    fn full(&self, prompt: &[u32], n: usize) -> bool {
        n >= self.sample_len || prompt.len() + n + 1 >= self.n_ctx
    }

    /// openai-whisper's `BeamSearchDecoder` at temperature 0: every step, each
    /// live hypothesis proposes its `beam_size + 1` most probable next tokens;
    /// the best `beam_size` continuations stay live and those ending the text
    /// are collected until `beam_size · patience` have finished; the finished
    /// (topped up with the best live ones) are ranked with the length penalty.
    /// The live hypotheses decode as one batch ([`Network::decode_batch`]); a
    /// hypothesis that takes over another's cache copies only the positions
    /// after their common prefix. A prefix (`forced`, already at the end of
    /// `prompt`) starts every hypothesis, as in openai-whisper and
    /// faster-whisper: the filters see it, the scores and lengths do not.
    fn decode_beam(
        &self,
        cross: &B::Cross,
        prompt: &[u32],
        sot_index: usize,
        forced: &[u32],
    ) -> Result<WindowResult> {
        let search = self.search;
        let beam = search.beam_size;
        let max_finished = ((beam as f32 * search.patience).round() as usize).max(1);
        let eot = self.filters.tokens.eot;
        // Every kernel set gives the same bits for the log-sum-exp
        // ([`LogitFilters::apply_lse`]); the network's own serves it.
        let kernels = self.backend.host_kernels();
        let (cache, logits, no_speech_prob) = self.start(cross, prompt, sot_index)?;
        let mut caches = vec![cache];
        let mut rows = vec![logits];
        let mut live = vec![Hyp {
            tokens: Vec::new(),
            sum: 0.0,
            logprobs: Vec::new(),
        }];
        let mut finished: Vec<(Vec<u32>, f32)> = Vec::new();
        // The per-token log-probabilities of `finished`, in its order.
        let mut finished_lp: Vec<Vec<f32>> = Vec::new();
        loop {
            // Candidates (score, source, token, its log-probability), best first.
            let mut cands: Vec<(f32, usize, u32, f32)> = Vec::new();
            for (i, (hyp, row)) in live.iter().zip(rows.iter_mut()).enumerate() {
                let ctx = with_forced(forced, &hyp.tokens);
                let lse = self.filters.apply_lse(row, &ctx, kernels);
                for (tok, logit) in top_k(row, beam + 1) {
                    cands.push((hyp.sum + (logit - lse), i, tok as u32, logit - lse));
                }
            }
            cands.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut next: Vec<(usize, Hyp)> = Vec::new();
            let mut newly: Vec<(Vec<u32>, f32, Vec<f32>)> = Vec::new();
            for (score, src, tok, lp) in cands {
                if tok == eot {
                    newly.push((live[src].tokens.clone(), score, live[src].logprobs.clone()));
                } else {
                    let mut tokens = live[src].tokens.clone();
                    tokens.push(tok);
                    let mut logprobs = live[src].logprobs.clone();
                    logprobs.push(lp);
                    next.push((
                        src,
                        Hyp {
                            tokens,
                            sum: score,
                            logprobs,
                        },
                    ));
                    if next.len() == beam {
                        break;
                    }
                }
            }
            for (tokens, score, lp) in newly {
                if finished.len() >= max_finished {
                    break;
                }
                if !finished.iter().any(|(t, _)| *t == tokens) {
                    finished.push((tokens, score));
                    finished_lp.push(lp);
                }
            }
            let limit = next
                .first()
                .is_none_or(|(_, h)| self.full(prompt, h.tokens.len()));
            if finished.len() >= max_finished || limit {
                // openai-whisper's `finalize`: too few finished, the best live
                // ones join them.
                for (_, h) in &next {
                    if finished.len() >= beam {
                        break;
                    }
                    finished.push((h.tokens.clone(), h.sum));
                    finished_lp.push(h.logprobs.clone());
                }
                break;
            }
            self.check_abort()?;
            caches = self.reorder(caches, &live, &next, prompt.len());
            let tokens: Vec<u32> = next
                .iter()
                .map(|(_, h)| h.tokens[h.tokens.len() - 1])
                .collect();
            live = next.into_iter().map(|(_, h)| h).collect();
            let mut refs: Vec<&mut B::Cache> = caches.iter_mut().collect();
            rows = self.backend.decode_batch(cross, &mut refs, &tokens)?;
        }
        if finished.is_empty() {
            finished.push((Vec::new(), 0.0));
            finished_lp.push(Vec::new());
        }
        let best = search.rank(&finished);
        let (tokens, sum) = finished.swap_remove(best);
        Ok(prefixed(
            forced,
            WindowResult {
                avg_logprob: sum / (tokens.len() as f32 + 1.0),
                tokens,
                no_speech_prob,
                temperature: 0.0,
                compression_ratio: 0.0,
                logprobs: finished_lp.swap_remove(best),
            },
        ))
    }

    /// The caches of the hypotheses `next` (each continuing `live[source]`):
    /// the first continuation of a source takes its cache as it is; the others
    /// take a cache no longer needed (or a new one) and copy the source's
    /// positions from where the two hypotheses' tokens part.
    fn reorder(
        &self,
        caches: Vec<B::Cache>,
        live: &[Hyp],
        next: &[(usize, Hyp)],
        prompt_len: usize,
    ) -> Vec<B::Cache> {
        let mut claimed = vec![false; caches.len()];
        let mut owner = vec![None; next.len()];
        for (k, &(src, _)) in next.iter().enumerate() {
            if !claimed[src] {
                claimed[src] = true;
                owner[k] = Some(src);
            }
        }
        let mut old: Vec<Option<B::Cache>> = caches.into_iter().map(Some).collect();
        // Spare caches: those of hypotheses that died, with their tokens.
        let mut spare: Vec<(usize, B::Cache)> = Vec::new();
        for (i, c) in old.iter_mut().enumerate() {
            if !claimed[i] {
                spare.extend(c.take().map(|c| (i, c)));
            }
        }
        let mut copies: Vec<Option<B::Cache>> = Vec::with_capacity(next.len());
        for (k, (src, _)) in next.iter().enumerate() {
            if owner[k].is_some() {
                copies.push(None);
                continue;
            }
            let (mut cache, from) = match spare.pop() {
                Some((dead, c)) => {
                    let (a, b) = (&live[dead].tokens, &live[*src].tokens);
                    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
                    (c, prompt_len + common)
                }
                None => (self.backend.new_cache(), 0),
            };
            if let Some(source) = old[*src].as_ref() {
                self.backend.copy_cache(source, &mut cache, from);
            }
            copies.push(Some(cache));
        }
        copies
            .into_iter()
            .zip(owner)
            .map(|(copy, own)| match (copy, own) {
                (Some(c), _) => c,
                (None, Some(src)) => old[src].take().expect("each source is taken once"),
                (None, None) => unreachable!("a continuation without a cache"),
            })
            .collect()
    }

    /// Temperature above 0 with `best_of` candidates: as many sequences sampled
    /// side by side (one batched decoder step for all unfinished ones), the
    /// best by openai-whisper's ranking kept.
    fn decode_best_of(
        &self,
        cross: &B::Cross,
        prompt: &[u32],
        sot_index: usize,
        forced: &[u32],
        temperature: f32,
        rng: &mut Rng,
    ) -> Result<WindowResult> {
        let n = self.search.best_of;
        let eot = self.filters.tokens.eot;
        let kernels = self.backend.host_kernels();
        let (first, logits, no_speech_prob) = self.start(cross, prompt, sot_index)?;
        let mut caches: Vec<B::Cache> = (1..n)
            .map(|_| {
                let mut c = self.backend.new_cache();
                self.backend.copy_cache(&first, &mut c, 0);
                c
            })
            .collect();
        caches.insert(0, first);
        let mut seqs: Vec<(Vec<u32>, f32)> = vec![(Vec::new(), 0.0); n];
        // Each sequence's per-token log-probabilities.
        let mut lps: Vec<Vec<f32>> = vec![Vec::new(); n];
        let mut open: Vec<usize> = (0..n).collect();
        let mut rows: Vec<Vec<f32>> = vec![logits; n];
        loop {
            let mut still = Vec::new();
            let mut tokens = Vec::new();
            for (&s, row) in open.iter().zip(rows.iter_mut()) {
                let (seq, sum) = &mut seqs[s];
                let lse = self
                    .filters
                    .apply_lse(row, &with_forced(forced, seq), kernels);
                let next = sample(row, temperature, rng);
                let lp = row[next] - lse;
                *sum += lp;
                if next as u32 == eot {
                    continue;
                }
                seq.push(next as u32);
                lps[s].push(lp);
                if !self.full(prompt, seq.len()) {
                    still.push(s);
                    tokens.push(next as u32);
                }
            }
            if still.is_empty() {
                break;
            }
            self.check_abort()?;
            let mut refs: Vec<&mut B::Cache> = caches
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| still.contains(i))
                .map(|(_, c)| c)
                .collect();
            rows = self.backend.decode_batch(cross, &mut refs, &tokens)?;
            open = still;
        }
        let best = self.search.rank(&seqs);
        let (tokens, sum) = seqs.swap_remove(best);
        Ok(prefixed(
            forced,
            WindowResult {
                avg_logprob: sum / (tokens.len() as f32 + 1.0),
                tokens,
                no_speech_prob,
                temperature,
                compression_ratio: 0.0,
                logprobs: lps.swap_remove(best),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::top_k;

    /// `top_k` against a stable sort (highest first, lower index on ties) on
    /// random rows with many ties, −∞ stretches, every tail length and k.
    #[test]
    fn top_k_matches_a_stable_sort() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for case in 0..400 {
            let n = (rnd() % 300) as usize;
            let mut row: Vec<f32> = (0..n).map(|_| (rnd() % 40) as f32 - 20.0).collect();
            if case % 3 == 0 {
                for v in row.iter_mut().skip(n / 4).take(n / 2) {
                    *v = f32::NEG_INFINITY;
                }
            }
            if case % 5 == 0 {
                // Rising values: the k-th changes in almost every chunk.
                row.iter_mut().enumerate().for_each(|(i, v)| *v = i as f32);
            }
            for k in [0, 1, 2, 6, 17] {
                let mut want: Vec<(usize, f32)> = row.iter().cloned().enumerate().collect();
                want.sort_by(|a, b| b.1.total_cmp(&a.1));
                want.truncate(k);
                assert_eq!(top_k(&row, k), want, "case {case} n {n} k {k}");
            }
        }
    }
}
