//! Word error rate: word-level Levenshtein alignment with a substitution /
//! deletion / insertion backtrace, and corpus-level aggregation
//! (total errors / total reference words, not a mean of per-utterance rates).

use super::normalize::normalize;
use std::ops::{Add, AddAssign};

/// Edit counts of one or many aligned pairs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub ref_words: usize,
    pub sub: usize,
    pub del: usize,
    pub ins: usize,
}

impl Counts {
    pub fn errors(&self) -> usize {
        self.sub + self.del + self.ins
    }

    /// Errors / reference words. With no reference words the rate is 0 when
    /// there are no errors and infinite otherwise (the insertions are still
    /// counted in `ins`; JSON writes the infinite rate as `null`).
    pub fn wer(&self) -> f64 {
        if self.ref_words == 0 {
            if self.errors() == 0 {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            self.errors() as f64 / self.ref_words as f64
        }
    }
}

impl Add for Counts {
    type Output = Counts;
    fn add(self, o: Counts) -> Counts {
        Counts {
            ref_words: self.ref_words + o.ref_words,
            sub: self.sub + o.sub,
            del: self.del + o.del,
            ins: self.ins + o.ins,
        }
    }
}

impl AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        *self = *self + o;
    }
}

/// Aligns two word sequences with the fewest edits. Among equally short
/// alignments the backtrace (from the end) prefers a match or substitution,
/// then a deletion, then an insertion, so the split into S/D/I is deterministic
/// (and the same as `tools/wer.py`).
pub fn align<S: AsRef<str>>(reference: &[S], hypothesis: &[S]) -> Counts {
    let (n, m) = (reference.len(), hypothesis.len());
    let width = m + 1;
    // cost[i * width + j]: edits turning reference[..i] into hypothesis[..j].
    let mut cost = vec![0u32; (n + 1) * width];
    for (j, c) in cost.iter_mut().enumerate().take(width) {
        *c = j as u32;
    }
    for i in 1..=n {
        cost[i * width] = i as u32;
        let r = reference[i - 1].as_ref();
        for j in 1..=m {
            let diag = cost[(i - 1) * width + j - 1] + (r != hypothesis[j - 1].as_ref()) as u32;
            let up = cost[(i - 1) * width + j] + 1;
            let left = cost[i * width + j - 1] + 1;
            cost[i * width + j] = diag.min(up).min(left);
        }
    }
    let mut c = Counts {
        ref_words: n,
        ..Counts::default()
    };
    let (mut i, mut j) = (n, m);
    while i > 0 || j > 0 {
        let here = cost[i * width + j];
        if i > 0 && j > 0 {
            let differ = reference[i - 1].as_ref() != hypothesis[j - 1].as_ref();
            if here == cost[(i - 1) * width + j - 1] + differ as u32 {
                c.sub += differ as usize;
                i -= 1;
                j -= 1;
                continue;
            }
        }
        if i > 0 && here == cost[(i - 1) * width + j] + 1 {
            c.del += 1;
            i -= 1;
        } else {
            c.ins += 1;
            j -= 1;
        }
    }
    c
}

/// One scored pair: the normalised texts and their counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Scored {
    pub reference: String,
    pub hypothesis: String,
    pub counts: Counts,
}

/// Normalises both texts ([`normalize`]) and aligns their words.
pub fn score(reference: &str, hypothesis: &str) -> Scored {
    let (r, h) = (normalize(reference), normalize(hypothesis));
    let rw: Vec<&str> = r.split_whitespace().collect();
    let hw: Vec<&str> = h.split_whitespace().collect();
    let counts = align(&rw, &hw);
    Scored {
        reference: r,
        hypothesis: h,
        counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain edit distance, written independently (two rows, no backtrace).
    fn distance(a: &[&str], b: &[&str]) -> usize {
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, x) in a.iter().enumerate() {
            let mut row = vec![i + 1];
            for (j, y) in b.iter().enumerate() {
                let v = (prev[j] + usize::from(x != y))
                    .min(prev[j + 1] + 1)
                    .min(row[j] + 1);
                row.push(v);
            }
            prev = row;
        }
        prev[b.len()]
    }

    fn check(r: &str, h: &str, s: usize, d: usize, i: usize) -> Counts {
        let sc = score(r, h);
        let c = sc.counts;
        assert_eq!((c.sub, c.del, c.ins), (s, d, i), "{r:?} vs {h:?}");
        let rw: Vec<&str> = sc.reference.split_whitespace().collect();
        let hw: Vec<&str> = sc.hypothesis.split_whitespace().collect();
        assert_eq!(c.errors(), distance(&rw, &hw), "{r:?} vs {h:?}");
        assert_eq!(c.ref_words, rw.len());
        c
    }

    #[test]
    fn hand_made_cases() {
        assert_eq!(check("the cat sat", "the cat sat", 0, 0, 0).wer(), 0.0);
        assert_eq!(check("the cat sat", "", 0, 3, 0).wer(), 1.0);
        let c = check("", "hello there", 0, 0, 2);
        assert_eq!(c.ref_words, 0);
        assert!(c.wer().is_infinite());
        assert_eq!(check("", "", 0, 0, 0).wer(), 0.0);
        let c = check("the cat sat on the mat", "the dog sat on the mat", 1, 0, 0);
        assert!((c.wer() - 1.0 / 6.0).abs() < 1e-12);
        check("the cat sat on the mat", "the cat on the mat", 0, 1, 0);
        check(
            "the cat sat on the mat",
            "the cat sat down on the mat",
            0,
            0,
            1,
        );
        check("a b c d e", "x a b d e", 0, 1, 1);
        check("a b c d", "x a b d y", 2, 0, 1); // as tools/wer.py splits it
        assert_eq!(align(&["a", "b"], &["b", "a"]).errors(), 2);
        check(
            "HE HOPED THERE WOULD BE STEW FOR DINNER",
            " He hoped, there would be stew for dinner!",
            0,
            0,
            0,
        );
    }

    #[test]
    fn random_pairs_match_independent_distance() {
        // A small linear congruential generator: deterministic, no dependency.
        let mut state = 12345u64;
        let mut next = |k: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % k
        };
        let vocab = ["a", "b", "c", "d"];
        for _ in 0..500 {
            let n = next(9) as usize;
            let m = next(9) as usize;
            let r: Vec<&str> = (0..n).map(|_| vocab[next(4) as usize]).collect();
            let h: Vec<&str> = (0..m).map(|_| vocab[next(4) as usize]).collect();
            let c = align(&r, &h);
            assert_eq!(c.errors(), distance(&r, &h), "{r:?} {h:?}");
            // Lengths must add up: n - D + I = m.
            assert_eq!(n - c.del + c.ins, m, "{r:?} {h:?}");
        }
    }

    #[test]
    fn corpus_wer_is_total_errors_over_total_words() {
        let total =
            score("a b c d e f g h i j", "a b c d e f g h i j").counts + score("x", "y").counts;
        assert!((total.wer() - 1.0 / 11.0).abs() < 1e-12);
    }
}
