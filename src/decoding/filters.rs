//! Logit filters applied before each token is chosen (openai-whisper's order:
//! suppress blank, suppress tokens, timestamp rules).
use crate::format::SpecialTokens;
use sotto_kernels::Kernels;

/// What the filters need to know about the vocabulary and the window.
#[derive(Clone)]
pub struct LogitFilters {
    pub tokens: SpecialTokens,
    pub n_vocab: usize,
    /// Token ids always suppressed.
    pub suppress: Vec<u32>,
    /// Tokens suppressed at the first sampled position (blank and end of text).
    pub suppress_begin: Vec<u32>,
    /// Tokens forced before sampling starts (`<|0.00|>` and a prefix): the
    /// timestamp rules see them, the first-position rules apply after them
    /// (openai-whisper's `sample_begin`).
    pub sample_begin: usize,
    pub timestamps: bool,
    /// Largest first timestamp, in timestamp steps (1.0 s = 50 steps); `None` for no limit.
    pub max_initial_timestamp: Option<u32>,
}

impl LogitFilters {
    /// Filters `logits` for the next token after `sampled` (the tokens chosen so far in this window).
    pub fn apply(&self, logits: &mut [f32], sampled: &[u32]) {
        self.apply_masks(logits, sampled);
        if self.mass_rule_applies(logits.len()) {
            self.timestamp_mass_rule(logits);
        }
    }

    /// Every filter but the one that looks at the values (the timestamp mass rule):
    /// what it sets to −∞ depends on `sampled` only, so a device can take it as a mask.
    pub fn apply_masks(&self, logits: &mut [f32], sampled: &[u32]) {
        let ninf = f32::NEG_INFINITY;
        if sampled.len() == self.sample_begin {
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
        self.timestamp_masks(logits, sampled);
    }

    /// [`LogitFilters::apply`], returning the filtered row's log-sum-exp (what
    /// greedy steps, sampled rows and beam search take per row and step;
    /// `apply` stays as the scalar reference the tests hold this to): the mass
    /// rule's sums and the row's are the same two, text and timestamps apart, each one pass
    /// of the kernels' [`Kernels::max_exp_sum`] (SIMD exp, f64 lane sums;
    /// every kernel set gives the same bits), instead of
    /// [`log_sum_exp`]'s scalar f64 exponentials over the row three times.
    pub fn apply_lse(&self, logits: &mut [f32], sampled: &[u32], kernels: &Kernels) -> f32 {
        let ninf = f32::NEG_INFINITY;
        self.apply_masks(logits, sampled);
        let n = logits.len();
        let tb = if self.mass_rule_applies(n) {
            self.tokens.timestamp_begin as usize
        } else {
            n
        };
        let (text_max, text_sum) = kernels.max_exp_sum(&logits[..tb]);
        let (ts_max, ts_sum) = kernels.max_exp_sum(&logits[tb..]);
        let m = text_max.max(ts_max);
        if m == ninf {
            return m;
        }
        let scaled = |max: f32, sum: f64| {
            if max == ninf {
                0.0
            } else {
                sum * ((max - m) as f64).exp()
            }
        };
        let lse = m + (scaled(text_max, text_sum) + scaled(ts_max, ts_sum)).ln() as f32;
        if tb < n {
            let ts_lse = if ts_max == ninf {
                ninf
            } else {
                ts_max + ts_sum.ln() as f32
            };
            if ts_lse - lse > text_max - lse {
                logits[..tb].iter_mut().for_each(|l| *l = ninf);
                return ts_lse;
            }
        }
        lse
    }

    fn mass_rule_applies(&self, n: usize) -> bool {
        self.timestamps && (self.tokens.timestamp_begin as usize) < n
    }

    fn timestamp_masks(&self, logits: &mut [f32], seq: &[u32]) {
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
    }

    /// Forces a timestamp when together they are likelier than any single text token.
    fn timestamp_mass_rule(&self, logits: &mut [f32]) {
        let ninf = f32::NEG_INFINITY;
        let tb = self.tokens.timestamp_begin as usize;
        let lse = log_sum_exp(logits);
        let ts_lse = log_sum_exp(&logits[tb..]);
        let max_text = logits[..tb].iter().cloned().fold(ninf, f32::max);
        if ts_lse - lse > max_text - lse {
            logits[..tb].iter_mut().for_each(|l| *l = ninf);
        }
    }

    /// The greedy choice from a summary of masked logits ([`LogitFilters::apply_masks`]
    /// already applied), split at `timestamp_begin`: the timestamp mass rule, then the
    /// arg-max and its log-probability, as [`LogitFilters::apply`] + arg-max +
    /// [`log_prob`] give them on the whole row.
    pub fn pick(&self, s: &LogitSummary) -> (u32, f32) {
        let lse = s.lse_all();
        let [text, ts] = s.parts;
        let forced = self.mass_rule_applies(s.n_vocab) && ts.lse - lse > text.max - lse;
        if forced {
            // Text at −∞: the row's arg-max is the best timestamp, or 0 if none is left.
            let lse = ts.lse;
            return if ts.max > f32::NEG_INFINITY {
                (ts.arg, ts.max - lse)
            } else {
                (0, ts.max - lse)
            };
        }
        // The first index of the maximum: text ids come before timestamps.
        let best = if ts.max > text.max { ts } else { text };
        let arg = if best.max > f32::NEG_INFINITY {
            best.arg
        } else {
            0
        };
        (arg, best.max - lse)
    }
}

/// Maximum, its first index and log-sum-exp of part of a row (−∞, 0, −∞ when empty
/// or all −∞).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PartSummary {
    pub max: f32,
    pub arg: u32,
    pub lse: f32,
}

impl PartSummary {
    pub const EMPTY: PartSummary = PartSummary {
        max: f32::NEG_INFINITY,
        arg: 0,
        lse: f32::NEG_INFINITY,
    };

    /// Of `x`, indices counted from `first`.
    pub fn of(x: &[f32], first: usize) -> PartSummary {
        let mut s = PartSummary::EMPTY;
        for (i, &v) in x.iter().enumerate() {
            if v > s.max {
                s.max = v;
                s.arg = (first + i) as u32;
            }
        }
        s.lse = log_sum_exp(x);
        s
    }
}

/// A row of logits reduced to what greedy decoding needs: text tokens
/// (`..timestamp_begin`) and timestamps (`timestamp_begin..`) apart.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogitSummary {
    pub n_vocab: usize,
    pub parts: [PartSummary; 2],
}

impl LogitSummary {
    /// The summary of `x` split at `split` (clamped to the row).
    pub fn of(x: &[f32], split: usize) -> LogitSummary {
        let split = split.min(x.len());
        LogitSummary {
            n_vocab: x.len(),
            parts: [
                PartSummary::of(&x[..split], 0),
                PartSummary::of(&x[split..], split),
            ],
        }
    }

    /// log-sum-exp of the whole row.
    pub fn lse_all(&self) -> f32 {
        let [a, b] = self.parts.map(|p| p.lse);
        let m = a.max(b);
        if m == f32::NEG_INFINITY {
            return m;
        }
        let s = ((a - m) as f64).exp() + ((b - m) as f64).exp();
        m + s.ln() as f32
    }
}

/// What `Backend::decode_greedy` returns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Greedy {
    pub token: u32,
    pub logprob: f32,
    pub probe: Option<f32>,
}

/// The first index of the largest value (0 for an empty or all-NaN row).
pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
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
            sample_begin: 0,
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
    fn blank_and_end_are_suppressed_at_the_first_token_after_a_forced_start() {
        // `<|0.00|>` and one prefix token forced: eot (10) is barred right after
        // them, not at the window's first position nor after a sampled token.
        let f = LogitFilters {
            sample_begin: 2,
            ..filters()
        };
        let eot_after = |sampled: &[u32]| {
            let mut l = vec![0f32; 200];
            l[10] = 10.0; // above the timestamps' mass
            f.apply(&mut l, sampled);
            l[10]
        };
        assert!(eot_after(&[12, 4]).is_infinite());
        assert!(eot_after(&[12, 4, 5]).is_finite());
        // Nothing forced (timestamps off, so no timestamp rule bars eot): the
        // first position only.
        let plain = LogitFilters {
            timestamps: false,
            ..filters()
        };
        for (sampled, barred) in [(&[][..], true), (&[4][..], false)] {
            let mut l = vec![0f32; 200];
            l[10] = 5.0;
            plain.apply(&mut l, sampled);
            assert_eq!(l[10].is_infinite(), barred);
        }
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

    /// `pick` on the summary of the masked row chooses as `apply` + arg-max +
    /// `log_prob` on the whole row: random rows, ties, the mass rule on and off, every
    /// kind of window history, masks that empty a part.
    #[test]
    fn pick_from_summary_matches_the_whole_row() {
        let mut f = filters();
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut rnd = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let histories: [&[u32]; 7] = [
            &[],
            &[12],
            &[12, 4],
            &[12, 4, 32],
            &[32, 32],
            &[4, 5],
            &[199],
        ];
        for case in 0..400 {
            f.timestamps = case % 5 != 0;
            f.max_initial_timestamp = if case % 3 == 0 { None } else { Some(50) };
            let mut l: Vec<f32> = (0..200)
                .map(|_| (rnd() % 2000) as f32 / 100.0 - 10.0)
                .collect();
            if case % 4 == 1 {
                // Coarse values: ties between text and timestamps and within a part.
                l.iter_mut().for_each(|v| *v = v.round());
            }
            if case % 7 == 2 {
                // Timestamps jointly likelier than the best text token.
                l[..12].iter_mut().for_each(|v| *v -= 3.0);
            }
            for h in histories {
                let mut whole = l.clone();
                f.apply(&mut whole, h);
                let want = argmax(&whole);
                let want_lp = log_prob(&whole, want);
                let mut masked = l.clone();
                f.apply_masks(&mut masked, h);
                let (got, got_lp) = f.pick(&LogitSummary::of(&masked, 12));
                assert_eq!(got as usize, want, "case {case} history {h:?}");
                assert!(
                    (got_lp - want_lp).abs() <= 1e-5 * (1.0 + want_lp.abs())
                        || (got_lp.is_nan() && want_lp.is_nan()),
                    "case {case} history {h:?}: {got_lp} vs {want_lp}"
                );
            }
        }
    }

    /// `apply_lse` filters as `apply` (the same −∞ entries, the mass rule on and
    /// off) and returns the filtered row's log-sum-exp as `log_sum_exp` gives it
    /// (to f32 rounding), for every kernel set this CPU has.
    #[test]
    fn apply_lse_matches_apply_and_log_sum_exp() {
        let mut f = filters();
        let mut state = 0x0bad_cafe_1234_5678u64;
        let mut rnd = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let histories: [&[u32]; 6] = [&[], &[12], &[12, 4], &[12, 4, 32], &[32, 32], &[4, 5]];
        let mut forced = 0;
        for case in 0..300 {
            f.timestamps = case % 5 != 0;
            let mut l: Vec<f32> = (0..200)
                .map(|_| (rnd() % 3000) as f32 / 100.0 - 15.0)
                .collect();
            if case % 3 == 2 {
                l[..12].iter_mut().for_each(|v| *v -= 4.0);
            }
            for h in histories {
                let mut want = l.clone();
                f.apply(&mut want, h);
                let want_lse = log_sum_exp(&want);
                for k in Kernels::available() {
                    let mut got = l.clone();
                    let lse = f.apply_lse(&mut got, h, &k);
                    let same = want.iter().zip(&got).all(|(a, b)| a == b);
                    assert!(same, "case {case} history {h:?} {}: masks differ", k.name());
                    assert!(
                        (lse - want_lse).abs() <= 2e-6 * (1.0 + want_lse.abs()) || lse == want_lse,
                        "case {case} history {h:?} {}: {lse} vs {want_lse}",
                        k.name()
                    );
                }
                // Text last: only the mass rule can have masked all text.
                let text_last = h.last().is_some_and(|&t| t < 12);
                forced += usize::from(text_last && want[..12].iter().all(|v| v.is_infinite()));
            }
        }
        assert!(forced > 0, "no case exercised the mass rule");
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
