//! Logit filters applied before each token is chosen (openai-whisper's order:
//! suppress blank, suppress tokens, timestamp rules).
use crate::format::SpecialTokens;

/// What the filters need to know about the vocabulary and the window.
pub struct LogitFilters {
    pub tokens: SpecialTokens,
    pub n_vocab: usize,
    /// Token ids always suppressed.
    pub suppress: Vec<u32>,
    /// Tokens suppressed at the first sampled position (blank and end of text).
    pub suppress_begin: Vec<u32>,
    pub timestamps: bool,
    /// Largest first timestamp, in timestamp steps (1.0 s = 50 steps); `None` for no limit.
    pub max_initial_timestamp: Option<u32>,
}

impl LogitFilters {
    /// Filters `logits` for the next token after `sampled` (the tokens chosen so far in this window).
    pub fn apply(&self, logits: &mut [f32], sampled: &[u32]) {
        let ninf = f32::NEG_INFINITY;
        if sampled.is_empty() {
            for &t in &self.suppress_begin {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = ninf;
                }
            }
        }
        for &t in &self.suppress {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = ninf;
            }
        }
        if !self.timestamps {
            // Without timestamps every timestamp token is out of bounds.
            let tb = (self.tokens.timestamp_begin as usize).min(logits.len());
            logits[tb..].iter_mut().for_each(|l| *l = ninf);
            return;
        }
        self.timestamp_rules(logits, sampled);
    }

    fn timestamp_rules(&self, logits: &mut [f32], seq: &[u32]) {
        let ninf = f32::NEG_INFINITY;
        let tb = self.tokens.timestamp_begin as usize;
        let eot = self.tokens.eot as usize;
        if tb >= logits.len() {
            return;
        }
        logits[self.tokens.no_timestamps as usize] = ninf;
        let is_ts = |t: u32| t as usize >= tb;
        let last_ts = seq.last().is_some_and(|&t| is_ts(t));
        let penult_ts = seq.len() < 2 || is_ts(seq[seq.len() - 2]);
        if last_ts {
            if penult_ts {
                // Timestamps come in pairs: after a pair, text (or end) must follow.
                logits[tb..].iter_mut().for_each(|l| *l = ninf);
            } else {
                // After an opening timestamp: no text, only a closing timestamp or end.
                logits[..eot].iter_mut().for_each(|l| *l = ninf);
            }
        }
        // Timestamps never go backwards; a closing one may repeat the opening one.
        if let Some(&last) = seq.iter().rev().find(|&&t| is_ts(t)) {
            let floor = if last_ts && !penult_ts {
                last as usize
            } else {
                last as usize + 1
            };
            let end = floor.min(logits.len());
            logits[tb..end].iter_mut().for_each(|l| *l = ninf);
        }
        if seq.is_empty() {
            // The window starts with a timestamp, no later than the initial limit.
            logits[..tb].iter_mut().for_each(|l| *l = ninf);
            if let Some(max) = self.max_initial_timestamp {
                let last_allowed = tb + max as usize;
                if last_allowed + 1 < logits.len() {
                    logits[last_allowed + 1..]
                        .iter_mut()
                        .for_each(|l| *l = ninf);
                }
            }
        }
        // Force a timestamp when together they are likelier than any single text token.
        let lse = log_sum_exp(logits);
        let ts_lse = log_sum_exp(&logits[tb..]);
        let max_text = logits[..tb].iter().cloned().fold(ninf, f32::max);
        if ts_lse - lse > max_text - lse {
            logits[..tb].iter_mut().for_each(|l| *l = ninf);
        }
    }
}

pub fn log_sum_exp(x: &[f32]) -> f32 {
    let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    if m == f32::NEG_INFINITY {
        return m;
    }
    let s: f64 = x.iter().map(|&v| ((v - m) as f64).exp()).sum();
    m + s.ln() as f32
}

/// `log_softmax(x)[i]`.
pub fn log_prob(x: &[f32], i: usize) -> f32 {
    x[i] - log_sum_exp(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters() -> LogitFilters {
        // A toy vocabulary: 0..10 text, 10 eot, 11 no_timestamps, 12.. timestamps.
        LogitFilters {
            tokens: SpecialTokens {
                eot: 10,
                no_timestamps: 11,
                timestamp_begin: 12,
                ..Default::default()
            },
            n_vocab: 200,
            suppress: vec![3],
            suppress_begin: vec![10],
            timestamps: true,
            max_initial_timestamp: Some(50),
        }
    }

    #[test]
    fn first_token_is_an_early_timestamp() {
        let f = filters();
        let mut l = vec![0f32; 200];
        f.apply(&mut l, &[]);
        assert!(l[..12].iter().all(|v| v.is_infinite()));
        assert!(l[12..=62].iter().all(|v| v.is_finite()));
        assert!(l[63..].iter().all(|v| v.is_infinite()));
    }

    #[test]
    fn timestamps_pair_and_never_decrease() {
        let f = filters();
        // The first timestamp of a window counts as a pair: text must follow.
        let mut l = vec![0f32; 200];
        l[5] = 10.0;
        f.apply(&mut l, &[32]);
        assert!(l[12..].iter().all(|v| v.is_infinite()) && l[5].is_finite());
        // After text and an opening timestamp <|20|>: only timestamps ≥ 20 or eot.
        let mut l = vec![0f32; 200];
        l[10] = 10.0; // eot likely, so the timestamp mass does not force a timestamp
        f.apply(&mut l, &[12, 4, 32]);
        assert!(l[..10].iter().all(|v| v.is_infinite()));
        assert!(l[12..32].iter().all(|v| v.is_infinite()));
        assert!(l[32].is_finite() && l[10].is_finite());
        // After a pair: no timestamp.
        let mut l = vec![0f32; 200];
        l[5] = 10.0;
        f.apply(&mut l, &[12, 4, 32, 32]);
        assert!(l[12..].iter().all(|v| v.is_infinite()));
        assert!(l[5].is_finite());
        assert!(l[3].is_infinite());
        // After text following <|20|>: timestamps must be > 20.
        let mut l = vec![0f32; 200];
        l[5] = 10.0;
        f.apply(&mut l, &[32, 4]);
        assert!(l[12..=32].iter().all(|v| v.is_infinite()));
        assert!(l[33].is_finite());
    }

    #[test]
    fn timestamp_mass_wins_over_text() {
        let f = filters();
        let mut l = vec![-10f32; 200];
        l[5] = 1.0; // best text token
        for v in &mut l[40..60] {
            *v = 0.5; // many timestamps, each less likely, together more
        }
        f.apply(&mut l, &[12, 4]);
        assert!(l[..12].iter().all(|v| v.is_infinite()));
    }
}
