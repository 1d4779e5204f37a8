//! Log-probabilities from logits ([`log_softmax_at`], [`argmax`]) and the model's log-likelihood
//! of a token sequence: perplexity, bits per token and bits per
//! byte (`rwkv-score`), and the mean log-probability of a question after some text (the
//! heads' model ranking and evidence ordering).
//!
//! Token `i + 1` is scored by the logits after reading tokens `..= i` from the start state;
//! the negative log-probabilities are summed in f64, in token order.

use crate::{Logits, Model, Result, State};

/// Logits a scoring piece may hold at once (floats): 2^24, 64 MB.
pub const PIECE_LOGITS: usize = 1 << 24;

/// Most tokens in a scoring piece.
pub const MAX_PIECE_TOKENS: usize = 4096;

/// A sum of negative log-likelihoods and how many tokens it covers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LogLikelihood {
    /// `-Σ ln p(token)` over the scored tokens, in nats.
    pub nll_nats: f64,
    /// Tokens scored.
    pub tokens: usize,
}

impl LogLikelihood {
    /// Add the tokens `targets`, `targets[i]` scored by row `i` of `logits` (rows of `vocab`
    /// floats; rows beyond `targets` are ignored).
    pub fn add_logits(&mut self, logits: &[f32], vocab: usize, targets: &[u32]) {
        for (row, &target) in logits.chunks_exact(vocab.max(1)).zip(targets) {
            self.nll_nats -= log_softmax_at(row, target) as f64;
            self.tokens += 1;
        }
    }

    /// Mean negative log-likelihood per token, in nats (NaN for no tokens).
    pub fn nats_per_token(&self) -> f64 {
        self.nll_nats / self.tokens as f64
    }

    /// Mean negative log-likelihood per token, in bits.
    pub fn bits_per_token(&self) -> f64 {
        self.nats_per_token() / std::f64::consts::LN_2
    }

    /// Bits per byte of a text of `bytes` bytes (at least one) that the tokens spell.
    pub fn bits_per_byte(&self, bytes: usize) -> f64 {
        self.nll_nats / bytes.max(1) as f64 / std::f64::consts::LN_2
    }

    /// `exp` of the mean negative log-likelihood per token.
    pub fn perplexity(&self) -> f64 {
        self.nats_per_token().exp()
    }

    /// Mean log-probability per token (`-nats_per_token`); 0 for no tokens.
    pub fn mean_log_prob(&self) -> f64 {
        if self.tokens == 0 { 0.0 } else { -self.nats_per_token() }
    }
}

/// Tokens per piece for a model of `vocab` ids: as many as keep a piece's logits within
/// [`PIECE_LOGITS`] floats, between 1 and [`MAX_PIECE_TOKENS`].
pub fn piece_tokens(vocab: usize) -> usize {
    (PIECE_LOGITS / vocab.max(1)).clamp(1, MAX_PIECE_TOKENS)
}

/// The log-likelihood of `tokens[first..]` (`first` at least 1), each token scored by the
/// logits after reading the tokens before it from `state`.
///
/// Reads `tokens` but the last into `state` in pieces of at most `piece` tokens (one
/// `forward_seq` call each, so its logits are `piece × vocab` floats; `usize::MAX` reads them
/// in one call), calling `on_piece` with the tokens read so far after each. Nothing is read
/// when there is no token to score.
pub fn log_likelihood(
    model: &Model,
    state: &mut State,
    tokens: &[u32],
    first: usize,
    piece: usize,
    mut on_piece: impl FnMut(usize),
) -> Result<LogLikelihood> {
    let first = first.max(1);
    let mut ll = LogLikelihood::default();
    if tokens.len() <= first {
        return Ok(ll);
    }
    let vocab = model.config().vocab;
    let inputs = &tokens[..tokens.len() - 1];
    let mut read = 0;
    for chunk in inputs.chunks(piece.max(1)) {
        let logits = model.forward_seq(chunk, state, Logits::All)?;
        // Row `i` of this piece predicts token `read + i + 1`; score those from `first` on.
        let skip = (first - 1).saturating_sub(read).min(chunk.len());
        ll.add_logits(
            &logits[skip * vocab..],
            vocab,
            &tokens[read + skip + 1..read + chunk.len() + 1],
        );
        read += chunk.len();
        on_piece(read);
    }
    Ok(ll)
}

/// [`log_likelihood`] of several short sequences at once: lane `i` reads its tokens but the
/// last from its own state and scores them from `firsts[i]` (at least 1) on, every lane's rows
/// going through one set of matrix products per step ([`Model::forward_lanes_logits`]: one pass
/// over the weights instead of one per lane). Each result equals [`log_likelihood`] of that
/// lane alone in one piece (on the CPU bit for bit). All lanes' logits are held at once, so
/// this is for short sequences (a few hundred tokens in all). The first lane that fails gives
/// the error.
pub fn log_likelihood_lanes(
    model: &Model,
    lanes: &mut [crate::state::Lane<'_>],
    firsts: &[usize],
) -> Result<Vec<LogLikelihood>> {
    assert_eq!(lanes.len(), firsts.len(), "one first scored position per lane");
    let firsts: Vec<usize> = firsts.iter().map(|&f| f.max(1)).collect();
    let all: Vec<&[u32]> = lanes.iter().map(|l| l.tokens).collect();
    // A lane with nothing to score reads nothing, as `log_likelihood` has it.
    let mut reads: Vec<crate::state::Lane<'_>> = lanes
        .iter_mut()
        .zip(&firsts)
        .map(|(l, &f)| crate::state::Lane {
            tokens: if l.tokens.len() > f {
                &l.tokens[..l.tokens.len() - 1]
            } else {
                &[]
            },
            state: &mut *l.state,
        })
        .collect();
    let vocab = model.config().vocab;
    let outs = model.forward_lanes_logits(&mut reads);
    let mut lls = Vec::with_capacity(outs.len());
    for ((logits, toks), &first) in outs.into_iter().zip(all).zip(&firsts) {
        let logits = logits?;
        let mut ll = LogLikelihood::default();
        if toks.len() > first {
            ll.add_logits(&logits[(first - 1) * vocab..], vocab, &toks[first..]);
        }
        lls.push(ll);
    }
    Ok(lls)
}

/// `max` where NaN never wins.
pub fn max_ignoring_nan(a: f32, b: f32) -> f32 {
    if b > a { b } else { a }
}

/// Index of the largest logit (lowest index on ties; NaN counts as `-inf`; 0 for empty input).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best as u32
}

/// `log(softmax(logits)[id])`, computed stably (for perplexity scoring).
///
/// NaN logits count as `-inf`. Returns `-inf` for an id outside `logits`, for a `-inf` / NaN
/// logit, and when every logit is `-inf`. Logits of `+inf` share all the probability.
pub fn log_softmax_at(logits: &[f32], id: u32) -> f32 {
    let Some(&x) = logits.get(id as usize) else {
        return f32::NEG_INFINITY;
    };
    if x.is_nan() {
        return f32::NEG_INFINITY;
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, max_ignoring_nan);
    if max == f32::NEG_INFINITY {
        return f32::NEG_INFINITY;
    }
    if max == f32::INFINITY {
        if x != f32::INFINITY {
            return f32::NEG_INFINITY;
        }
        let n = logits.iter().filter(|&&v| v == f32::INFINITY).count();
        return -(n as f64).ln() as f32;
    }
    let max = max as f64;
    let sum: f64 = logits
        .iter()
        .filter(|v| !v.is_nan())
        .map(|&v| (v as f64 - max).exp())
        .sum();
    (x as f64 - max - sum.ln()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hand_computed_example() {
        // Two rows over a vocabulary of 2. Row 0: logits (0, 0) → p = 1/2 each; row 1: logits
        // (ln 3, 0) → p(0) = 3/4, p(1) = 1/4. Targets 1 then 0: -ln(1/2) - ln(3/4) = ln(8/3).
        let logits = [0.0, 0.0, 3f32.ln(), 0.0];
        let mut ll = LogLikelihood::default();
        ll.add_logits(&logits, 2, &[1, 0]);
        assert_eq!(ll.tokens, 2);
        let nats = (8.0f64 / 3.0).ln();
        assert!((ll.nll_nats - nats).abs() < 1e-6, "{ll:?}");
        assert!((ll.nats_per_token() - nats / 2.0).abs() < 1e-6);
        // Bits per token: log2(8/3) / 2; perplexity: sqrt(8/3).
        assert!((ll.bits_per_token() - (8.0f64 / 3.0).log2() / 2.0).abs() < 1e-6);
        assert!((ll.perplexity() - (8.0f64 / 3.0).sqrt()).abs() < 1e-6);
        assert!((ll.mean_log_prob() + nats / 2.0).abs() < 1e-6);
        // Over 4 bytes of text: log2(8/3) / 4 bits per byte; no bytes count as one.
        assert!((ll.bits_per_byte(4) - (8.0f64 / 3.0).log2() / 4.0).abs() < 1e-6);
        assert_eq!(ll.bits_per_byte(0), ll.bits_per_byte(1));
        // A certain token costs nothing; rows beyond the targets are ignored.
        let mut sure = LogLikelihood::default();
        sure.add_logits(&[0.0, f32::NEG_INFINITY, 5.0, 5.0], 2, &[0]);
        assert_eq!(
            sure,
            LogLikelihood {
                nll_nats: 0.0,
                tokens: 1
            }
        );
    }

    /// Logits spread over [-4, 4) by a fixed linear congruential walk.
    fn spread_logits(n: usize, salt: u64) -> Vec<f32> {
        let mut x = salt.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 11) as f64 / (1u64 << 53) as f64 * 8.0 - 4.0) as f32
            })
            .collect()
    }

    #[test]
    fn argmax_rules() {
        assert_eq!(argmax(&[]), 0);
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, -1.0, f32::NAN]), 1);
        assert_eq!(argmax(&[f32::NAN, f32::NAN]), 0);
        assert_eq!(argmax(&[f32::NEG_INFINITY, f32::INFINITY]), 1);
    }

    #[test]
    fn log_softmax_matches_direct_computation() {
        let l = spread_logits(1000, 77);
        let sum: f64 = l.iter().map(|&x| (x as f64).exp()).sum();
        for id in [0u32, 1, 500, 999] {
            let direct = ((l[id as usize] as f64).exp() / sum).ln();
            assert!((log_softmax_at(&l, id) as f64 - direct).abs() < 1e-5);
        }
        let total: f64 = (0..1000).map(|i| (log_softmax_at(&l, i) as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-4);
        // Stable for huge logits.
        let big = [1000.0f32, 1000.0, 999.0];
        let direct = -(2.0 + (-1.0f64).exp()).ln();
        assert!((log_softmax_at(&big, 0) as f64 - direct).abs() < 1e-5);
        assert!(log_softmax_at(&big, 3) == f32::NEG_INFINITY);
        assert!(log_softmax_at(&[f32::NAN, 0.0], 0) == f32::NEG_INFINITY);
        assert!((log_softmax_at(&[f32::NAN, 0.0], 1)).abs() < 1e-7);
        assert!(log_softmax_at(&[], 0) == f32::NEG_INFINITY);
        assert!((log_softmax_at(&[f32::INFINITY, f32::INFINITY, 1.0], 0) - (-(2.0f32).ln())).abs() < 1e-6);
    }

    #[test]
    fn nothing_scored_is_a_mean_of_zero() {
        let ll = LogLikelihood::default();
        assert_eq!(ll.mean_log_prob(), 0.0);
        assert!(ll.nats_per_token().is_nan());
    }

    #[test]
    fn pieces_hold_a_bounded_number_of_logits() {
        assert_eq!(piece_tokens(256), MAX_PIECE_TOKENS);
        assert_eq!(piece_tokens(65536), 256);
        assert_eq!(piece_tokens(1 << 30), 1);
        assert_eq!(piece_tokens(0), MAX_PIECE_TOKENS);
    }
}
