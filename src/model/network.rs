//! The Whisper network, written once over [`Backend`]: the conv stem, the encoder's
//! pre-norm blocks, the cross-attention keys and values of a window, and the
//! decoder's steps over a self-attention cache. Every backend runs exactly this
//! sequence; what differs is only how each operation is carried out.
use super::backend::{Attention, Backend, Buf, Epilogue, Keys, Lookup, Pass, PassKind, Rows};
use super::plan::Dims;
use crate::decoding::filters::{Greedy, LogitFilters};
use crate::{Error, Result};

/// The network's entry points, for every backend (and only as written here).
pub(crate) trait Network: Backend {
    /// Encodes one window of `n_mels × 2·n_audio_ctx` log-mel frames (channel-major)
    /// into every decoder layer's cross-attention keys and values.
    fn encode(&self, mel: &[f32]) -> Result<Self::Cross>;

    /// The encoder's output for one window (`n_audio_ctx × d`), read back.
    fn encoder_output(&self, mel: &[f32]) -> Result<Vec<f32>>;

    /// Runs `tokens` through the decoder after the tokens already in `cache`,
    /// appending them, and returns the logits of the positions `want` (indices
    /// into `tokens`).
    fn decode(
        &self,
        cross: &Self::Cross,
        cache: &mut Self::Cache,
        tokens: &[u32],
        want: &[usize],
    ) -> Result<Vec<Vec<f32>>>;

    /// A greedy step: appends `tokens` (at least one) like [`Network::decode`] and
    /// returns the token `filters` keep with the highest logit at the last position
    /// (given the tokens `sampled` so far in the window), its log-probability and,
    /// for `probe = Some((row, id))`, `log_softmax(logits[row])[id]` of the
    /// unfiltered row (the no-speech probability).
    fn decode_greedy(
        &self,
        cross: &Self::Cross,
        cache: &mut Self::Cache,
        tokens: &[u32],
        filters: &LogitFilters,
        sampled: &[u32],
        probe: Option<(usize, u32)>,
    ) -> Result<Greedy>;

    /// Word timestamps' pass: `tokens` through the decoder from an empty
    /// cache, returning the logits of positions `want` and, for each
    /// `(layer, head)` of `heads` in order, `tokens.len()` rows of that head's
    /// cross-attention probabilities over the window's first `keys` positions
    /// (softmax over those only), all heads in one vector.
    fn cross_weights(
        &self,
        cross: &Self::Cross,
        tokens: &[u32],
        want: &[usize],
        heads: &[(usize, usize)],
        keys: usize,
    ) -> Result<(Vec<Vec<f32>>, Vec<f32>)>;

    /// One step of several hypotheses together: `tokens[i]` appended to
    /// `caches[i]` (all of the same length), the logits of each returned in
    /// order. The rows share every weight read (one m = hypotheses GEMM per
    /// layer) and the window's cross-attention keys and values (one
    /// multi-query attention); only self-attention reads each row's own cache.
    fn decode_batch(
        &self,
        cross: &Self::Cross,
        caches: &mut [&mut Self::Cache],
        tokens: &[u32],
    ) -> Result<Vec<Vec<f32>>>;
}

/// Rows per batched decoder pass: the CPU kernels' small-m paths (attention's
/// per-query dot path below `ATTENTION_DOT_MAX_Q` queries, the linear dot
/// tiles below `CHAIN_MIN_M` rows) compute every row exactly as if it were
/// alone, so a hypothesis' logits do not depend on its neighbours.
pub(crate) const BATCH_ROWS: usize = sotto_kernels::canonical::ATTENTION_DOT_MAX_Q - 1;

impl<B: Backend + ?Sized> Network for B {
    fn encode(&self, mel: &[f32]) -> Result<B::Cross> {
        let mut p = encoder(self, mel)?;
        let Dims { d, .. } = *self.dims();
        let h = Rows::of(Buf::H, d);
        // Every decoder layer's keys|values of this window.
        let mut cross = self.new_cross();
        let kv = Rows::of(Buf::Wide, 2 * d);
        for (li, dl) in self.layers().decoder.iter().enumerate() {
            p.linear(&dl.cross_kv, h, self.dims().audio_ctx, kv, Epilogue::Plain);
            p.store_cross(&mut cross, li, kv);
        }
        p.finish()?;
        Ok(cross)
    }

    fn encoder_output(&self, mel: &[f32]) -> Result<Vec<f32>> {
        let p = encoder(self, mel)?;
        let Dims { d, audio_ctx, .. } = *self.dims();
        Ok(p.read(Rows::of(Buf::H, d), audio_ctx, d)?.concat())
    }

    fn decode(
        &self,
        cross: &B::Cross,
        cache: &mut B::Cache,
        tokens: &[u32],
        want: &[usize],
    ) -> Result<Vec<Vec<f32>>> {
        check_step(self, cache, tokens, want)?;
        let n_vocab = self.dims().n_vocab;
        let mut p = decoder_pass(self, tokens.len(), want.len())?;
        if !tokens.is_empty() {
            decoder_layers(self, &mut p, cross, &mut [cache], tokens, None)?;
            output_logits(self, &mut p, want);
        }
        p.read(Rows::of(Buf::Logits, n_vocab), want.len(), n_vocab)
    }

    fn decode_greedy(
        &self,
        cross: &B::Cross,
        cache: &mut B::Cache,
        tokens: &[u32],
        filters: &LogitFilters,
        sampled: &[u32],
        probe: Option<(usize, u32)>,
    ) -> Result<Greedy> {
        let n_vocab = self.dims().n_vocab;
        let Some(last) = tokens.len().checked_sub(1) else {
            return Err(Error::Invalid("a greedy step needs a token".into()));
        };
        if filters.n_vocab != n_vocab {
            return Err(Error::Invalid(format!(
                "filters for {} tokens, the model has {n_vocab}",
                filters.n_vocab
            )));
        }
        let want: Vec<usize> = probe.iter().map(|p| p.0).chain([last]).collect();
        check_step(self, cache, tokens, &want)?;
        let mut p = decoder_pass(self, tokens.len(), want.len())?;
        decoder_layers(self, &mut p, cross, &mut [cache], tokens, None)?;
        output_logits(self, &mut p, &want);
        let logits = Rows::of(Buf::Logits, n_vocab);
        let kernels = self.host_kernels();
        p.greedy(
            logits,
            want.len(),
            filters,
            sampled,
            probe.map(|p| p.1),
            kernels,
        )
    }

    fn cross_weights(
        &self,
        cross: &B::Cross,
        tokens: &[u32],
        want: &[usize],
        heads: &[(usize, usize)],
        keys: usize,
    ) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
        let Dims {
            d,
            n_vocab,
            audio_ctx,
            text_layers,
            text_heads,
            ..
        } = *self.dims();
        if tokens.is_empty() || keys == 0 || keys > audio_ctx {
            return Err(Error::Invalid(format!(
                "cross-attention weights of {} tokens over {keys} of {audio_ctx} positions",
                tokens.len()
            )));
        }
        if let Some(&(l, h)) = heads
            .iter()
            .find(|&&(l, h)| l >= text_layers || h >= text_heads)
        {
            return Err(Error::Invalid(format!(
                "alignment head ({l}, {h}) outside {text_layers} layers × {text_heads} heads"
            )));
        }
        let mut cache = self.new_cache();
        check_step(self, &cache, tokens, want)?;
        let n = tokens.len();
        // The logit rows first, then each head's probabilities.
        let weights_at = want.len() * n_vocab;
        let total = weights_at + heads.len() * n * keys;
        let mut p = self.pass(
            PassKind::Decoder,
            &[
                (Buf::X, n * d),
                (Buf::H, n.max(want.len()) * d),
                (Buf::Wide, n * 4 * d),
                (Buf::Logits, total),
            ],
        )?;
        let capture = Capture {
            heads,
            keys,
            out: Rows::of(Buf::Logits, keys).at(weights_at),
        };
        decoder_layers(
            self,
            &mut p,
            cross,
            &mut [&mut cache],
            tokens,
            Some(&capture),
        )?;
        // The rows wanted here are consecutive text tokens: normed and projected as
        // one m = rows GEMM (these probabilities need not match a step's bits).
        match want {
            [first, ..] if want.windows(2).all(|w| w[1] == w[0] + 1) => {
                let l = self.layers();
                let rows = want.len();
                let normed = Rows::of(Buf::H, d);
                p.layer_norm(&l.dec_norm, Rows::of(Buf::X, d).at(first * d), rows, normed);
                p.project(&l.embedding, normed, rows, Rows::of(Buf::Logits, n_vocab));
            }
            _ => output_logits(self, &mut p, want),
        }
        let mut all = p.read(Rows::of(Buf::Logits, total), 1, total)?.concat();
        let weights = all.split_off(weights_at);
        let logits = all.chunks(n_vocab).map(|r| r.to_vec()).collect();
        Ok((logits, weights))
    }

    fn decode_batch(
        &self,
        cross: &B::Cross,
        caches: &mut [&mut B::Cache],
        tokens: &[u32],
    ) -> Result<Vec<Vec<f32>>> {
        if caches.len() != tokens.len() {
            return Err(Error::Invalid(format!(
                "{} tokens for {} hypotheses",
                tokens.len(),
                caches.len()
            )));
        }
        let past = caches.first().map_or(0, |c| self.cache_len(c));
        for c in caches.iter() {
            if self.cache_len(c) != past {
                return Err(Error::Invalid(
                    "batched hypotheses must have the same length".into(),
                ));
            }
            check_step(self, c, &tokens[..1], &[0])?;
        }
        let n_vocab = self.dims().n_vocab;
        let mut out = Vec::with_capacity(tokens.len());
        for (caches, tokens) in caches.chunks_mut(BATCH_ROWS).zip(tokens.chunks(BATCH_ROWS)) {
            let n = tokens.len();
            let mut p = decoder_pass(self, n, n)?;
            decoder_layers(self, &mut p, cross, caches, tokens, None)?;
            let l = self.layers();
            let d = l.dims.d;
            let (x, h) = (Rows::of(Buf::X, d), Rows::of(Buf::H, d));
            p.layer_norm(&l.dec_norm, x, n, h);
            let logits = Rows::of(Buf::Logits, n_vocab);
            p.project(&l.embedding, h, n, logits);
            out.extend(p.read(logits, n, n_vocab)?);
        }
        Ok(out)
    }
}

/// The conv stem and the encoder blocks over one window; the output is left
/// normed in [`Buf::H`] of the returned (open) pass.
fn encoder<'b, B: Backend + ?Sized>(b: &'b B, mel: &[f32]) -> Result<B::Pass<'b>> {
    let l = b.layers();
    let Dims {
        n_mels: nm,
        audio_ctx: ctx,
        d,
        audio_heads: heads,
        ..
    } = l.dims;
    let frames = l.dims.frames();
    if mel.len() != nm * frames {
        return Err(Error::Invalid(format!(
            "mel window has {} values, the encoder takes {nm} × {frames}",
            mel.len()
        )));
    }
    let mut p = b.pass(
        PassKind::Encoder,
        &[
            (Buf::Mel, nm * frames),
            (Buf::Col, (frames * nm * 3).max(ctx * d * 3)),
            (Buf::Conv, frames * d),
            (Buf::X, ctx * d),
            (Buf::H, ctx * d),
            (Buf::Wide, ctx * 4 * d),
        ],
    )?;
    let (x, h) = (Rows::of(Buf::X, d), Rows::of(Buf::H, d));
    let gelu = Epilogue::Gelu;

    // The conv stem: conv1 over the channel-major mel, conv2 (stride 2) over
    // conv1's time-major output, then the sinusoidal positions.
    p.write_mel(mel);
    let conv = Rows::of(Buf::Conv, d);
    p.conv(
        &l.conv1,
        Buf::Mel,
        nm,
        frames,
        (frames, 1),
        1,
        frames,
        Buf::Col,
        conv,
        gelu,
    );
    p.release(Buf::Mel);
    p.conv(
        &l.conv2,
        Buf::Conv,
        d,
        frames,
        (1, d),
        2,
        ctx,
        Buf::Col,
        x,
        gelu,
    );
    p.release(Buf::Col);
    p.release(Buf::Conv);
    p.embed(&l.enc_pos, Lookup::From(0), ctx, x, true);

    // Pre-norm blocks. Besides the residual stream x, two buffers: h (normed
    // rows, then the heads' output) and wide (q|k|v, then the spare of the
    // attention projection, then the FFN's hidden layer), each value dead
    // before the next is written.
    let attention = Attention {
        n_q: ctx,
        n_kv: ctx,
        heads,
        causal_offset: None,
    };
    let qkv = Rows::of(Buf::Wide, 3 * d);
    for e in &l.encoder {
        p.layer_norm(&e.attn_norm, x, ctx, h);
        p.linear(&e.qkv, h, ctx, qkv, Epilogue::Plain);
        let kv = Keys::Rows {
            kv: qkv.at(d),
            v_off: d,
        };
        p.attention(qkv, kv, attention, h);
        p.linear(&e.out, h, ctx, x, Epilogue::Add { spare: Buf::Wide });
        p.layer_norm(&e.ffn_norm, x, ctx, h);
        let hidden = Rows::of(Buf::Wide, 4 * d);
        p.linear(&e.ffn_up, h, ctx, hidden, gelu);
        p.linear(&e.ffn_down, hidden, ctx, x, Epilogue::Add { spare: Buf::H });
    }
    p.layer_norm(&l.enc_norm, x, ctx, h);
    Ok(p)
}

/// The checks of a decoder call; they leave the cache as it is.
fn check_step<B: Backend + ?Sized>(
    b: &B,
    cache: &B::Cache,
    tokens: &[u32],
    want: &[usize],
) -> Result<()> {
    let Dims {
        text_ctx, n_vocab, ..
    } = *b.dims();
    let n = tokens.len();
    if b.cache_len(cache) + n > text_ctx {
        return Err(Error::Invalid(format!(
            "decoder context of {text_ctx} tokens exceeded"
        )));
    }
    if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
        return Err(Error::Invalid(format!("token id {bad} out of range")));
    }
    if let Some(&i) = want.iter().find(|&&i| i >= n) {
        return Err(Error::Invalid(format!(
            "logits wanted for position {i} of {n}"
        )));
    }
    if want.len() > text_ctx {
        return Err(Error::Invalid(format!(
            "at most {text_ctx} logit rows per decoder call"
        )));
    }
    Ok(())
}

fn decoder_pass<B: Backend + ?Sized>(b: &B, n: usize, rows: usize) -> Result<B::Pass<'_>> {
    let Dims { d, n_vocab, .. } = *b.dims();
    b.pass(
        PassKind::Decoder,
        &[
            (Buf::X, n * d),
            (Buf::H, n.max(rows) * d),
            (Buf::Wide, n * 4 * d),
            (Buf::Logits, rows * n_vocab),
        ],
    )
}

/// The decoder blocks over `tokens` (checked, non-empty) after the caches'
/// contents (all of one length): with one cache, every token appended to it;
/// with several, one token each (a batch of hypotheses). Advances the caches
/// and leaves the last block's output in x.
fn decoder_layers<B: Backend + ?Sized>(
    b: &B,
    p: &mut B::Pass<'_>,
    cross: &B::Cross,
    caches: &mut [&mut B::Cache],
    tokens: &[u32],
    capture: Option<&Capture>,
) -> Result<()> {
    let l = b.layers();
    let Dims {
        audio_ctx,
        d,
        text_heads: heads,
        ..
    } = l.dims;
    let n = tokens.len();
    // Rows per cache: all of them, or one per hypothesis.
    let per = n / caches.len().max(1);
    let past = caches.first().map_or(0, |c| b.cache_len(c));
    let (x, h) = (Rows::of(Buf::X, d), Rows::of(Buf::H, d));
    p.embed(&l.embedding, Lookup::Ids(tokens), n, x, false);
    for g in 0..caches.len() {
        p.embed(&l.dec_pos, Lookup::From(past), per, x.at(g * per * d), true);
    }
    let qkv = Rows::of(Buf::Wide, 3 * d);
    let q = Rows::of(Buf::Wide, d);
    let hidden = Rows::of(Buf::Wide, 4 * d);
    let add = Epilogue::Add { spare: Buf::Wide };
    for (li, dl) in l.decoder.iter().enumerate() {
        // Causal self-attention over each cache plus its new rows.
        p.layer_norm(&dl.self_norm, x, n, h);
        p.linear(&dl.self_qkv, h, n, qkv, Epilogue::Plain);
        for (g, cache) in caches.iter_mut().enumerate() {
            let rows = qkv.at(g * per * 3 * d);
            p.store_cache(cache, li, past, rows.at(d), per);
            let a = Attention {
                n_q: per,
                n_kv: past + per,
                heads,
                causal_offset: Some(past),
            };
            p.attention(rows, Keys::Cache(&**cache, li), a, h.at(g * per * d));
        }
        p.linear(&dl.self_out, h, n, x, add);

        // Cross-attention over the encoded window: every row against the
        // same keys, one multi-query operation.
        p.layer_norm(&dl.cross_norm, x, n, h);
        p.linear(&dl.cross_q, h, n, q, Epilogue::Plain);
        let a = Attention {
            n_q: n,
            n_kv: audio_ctx,
            heads,
            causal_offset: None,
        };
        if let Some(c) = capture {
            for (k, &(layer, head)) in c.heads.iter().enumerate() {
                if layer == li {
                    let out = c.out.at(k * n * c.keys);
                    p.cross_weights(q, cross, li, head, n, c.keys, out)?;
                }
            }
        }
        p.attention(q, Keys::Cross(cross, li), a, h);
        p.linear(&dl.cross_out, h, n, x, add);

        p.layer_norm(&dl.ffn_norm, x, n, h);
        p.linear(&dl.ffn_up, h, n, hidden, Epilogue::Gelu);
        p.linear(&dl.ffn_down, hidden, n, x, Epilogue::Add { spare: Buf::H });
    }
    for cache in caches.iter_mut() {
        b.set_cache_len(cache, past + per);
    }
    Ok(())
}

/// Cross-attention heads whose probabilities a decoder pass writes out: head
/// `k` of `heads` as rows of `keys` floats from `out.at(k · n · keys)`.
struct Capture<'h> {
    heads: &'h [(usize, usize)],
    keys: usize,
    out: Rows,
}

/// The final norm and the tied output projection of positions `want` of x into
/// consecutive rows of [`Buf::Logits`], one row at a time (as a single decoded
/// token's row is computed, so that every row's arithmetic is the same).
fn output_logits<B: Backend + ?Sized>(b: &B, p: &mut B::Pass<'_>, want: &[usize]) {
    let l = b.layers();
    let Dims { d, n_vocab, .. } = l.dims;
    for (slot, &i) in want.iter().enumerate() {
        let normed = Rows::of(Buf::H, d).at(slot * d);
        p.layer_norm(&l.dec_norm, Rows::of(Buf::X, d).at(i * d), 1, normed);
        let row = Rows::of(Buf::Logits, n_vocab).at(slot * n_vocab);
        p.project(&l.embedding, normed, 1, row);
    }
}
