//! Choosing the next token from logits: greedy, or temperature / top-k / top-p sampling with
//! presence and frequency penalties, driven by a seeded deterministic generator.
//!
//! The order of operations in [`Sampler::sample`]:
//! 1. penalties, on a copy of the logits: `logit[t] -= presence_penalty * (count[t] > 0) +
//!    frequency_penalty * count[t]`, where `count` counts the tokens this sampler has returned;
//! 2. `temperature <= 0`: the arg-max (lowest id on ties);
//! 3. otherwise `softmax(logits / temperature)`, restricted to the `top_k` most likely tokens
//!    (`top_k > 0`), then to the smallest set of most likely tokens whose probability reaches
//!    `top_p` (always at least one), renormalised, and one token drawn.
//!
//! NaN logits count as `-inf`. The same configuration, seed and logits give the same tokens.

use rwkv_model::likelihood::{argmax, max_ignoring_nan};

/// Sampling settings. The default is greedy decoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerConfig {
    /// Softmax temperature; `<= 0` means greedy (arg-max).
    pub temperature: f32,
    /// Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches
    /// this (`>= 1` keeps everything).
    pub top_p: f32,
    /// Keep only the `top_k` most likely tokens; 0 turns this off.
    pub top_k: usize,
    /// Subtracted from the logit of every token already produced.
    pub presence_penalty: f32,
    /// Subtracted from the logit of a token once per time it was already produced.
    pub frequency_penalty: f32,
    /// Seed of the random generator.
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self::greedy()
    }
}

impl SamplerConfig {
    /// Greedy decoding: temperature 0, no top-k / top-p, no penalties, seed 0.
    pub fn greedy() -> Self {
        SamplerConfig {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: 0,
        }
    }
}

/// Draws tokens from logits according to a [`SamplerConfig`], remembering what it produced (for
/// the penalties) and carrying its random generator from call to call.
#[derive(Debug, Clone)]
pub struct Sampler {
    cfg: SamplerConfig,
    rng: Xoshiro256,
    /// `counts[t]`: how many times token `t` was returned since the last reset.
    counts: Vec<u32>,
    /// Tokens with a non-zero count, each once.
    seen: Vec<u32>,
    /// Scratch space reused between calls.
    logits: Vec<f32>,
    cands: Vec<Cand>,
}

/// A candidate token: its (penalised) logit and unnormalised probability.
#[derive(Debug, Clone, Copy)]
struct Cand {
    id: u32,
    logit: f32,
    weight: f32,
}

impl Sampler {
    /// A sampler with nothing produced yet and its generator seeded from `cfg.seed`.
    pub fn new(cfg: SamplerConfig) -> Self {
        Sampler {
            cfg,
            rng: Xoshiro256::new(cfg.seed),
            counts: Vec::new(),
            seen: Vec::new(),
            logits: Vec::new(),
            cands: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Forgets the produced tokens and re-seeds the generator: the sampler behaves as new.
    pub fn reset(&mut self) {
        self.rng = Xoshiro256::new(self.cfg.seed);
        for &t in &self.seen {
            self.counts[t as usize] = 0;
        }
        self.seen.clear();
    }

    /// Chooses the next token from `logits` (one per vocabulary entry) and records it.
    ///
    /// Empty logits give 0.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if logits.is_empty() {
            return 0;
        }
        let cfg = self.cfg;
        let penalised = cfg.presence_penalty != 0.0 || cfg.frequency_penalty != 0.0;
        let id = if penalised && !self.seen.is_empty() {
            let mut l = std::mem::take(&mut self.logits);
            l.clear();
            l.extend_from_slice(logits);
            for &t in &self.seen {
                if let Some(x) = l.get_mut(t as usize) {
                    let c = self.counts[t as usize] as f32;
                    *x -= cfg.presence_penalty + cfg.frequency_penalty * c;
                }
            }
            let id = self.choose(&l);
            self.logits = l;
            id
        } else {
            self.choose(logits)
        };
        self.record(id);
        id
    }

    fn record(&mut self, id: u32) {
        let i = id as usize;
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        if self.counts[i] == 0 {
            self.seen.push(id);
        }
        self.counts[i] = self.counts[i].saturating_add(1);
    }

    fn choose(&mut self, logits: &[f32]) -> u32 {
        let cfg = self.cfg;
        // NaN temperature counts as greedy too.
        if cfg.temperature.is_nan() || cfg.temperature <= 0.0 {
            return argmax(logits);
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, max_ignoring_nan);
        if max == f32::NEG_INFINITY {
            // Nothing is possible (all -inf or NaN): fall back to the arg-max rule.
            return argmax(logits);
        }
        let inv_t = 1.0 / cfg.temperature;
        let cands = &mut self.cands;
        cands.clear();
        for (i, &l) in logits.iter().enumerate() {
            let weight = if l == max {
                1.0
            } else if l.is_nan() || max == f32::INFINITY {
                0.0
            } else {
                ((l - max) * inv_t).exp()
            };
            if weight > 0.0 {
                cands.push(Cand {
                    id: i as u32,
                    logit: l,
                    weight,
                });
            }
        }
        // Most likely first; equal logits by ascending id, so the order is deterministic.
        let order = |a: &Cand, b: &Cand| b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id));

        if cfg.top_k > 0 && cfg.top_k < cands.len() {
            cands.select_nth_unstable_by(cfg.top_k - 1, order);
            cands.truncate(cfg.top_k);
        }
        if cfg.top_p.is_nan() || cfg.top_p < 1.0 {
            let total: f64 = cands.iter().map(|c| c.weight as f64).sum();
            let threshold = if cfg.top_p.is_nan() {
                0.0
            } else {
                cfg.top_p as f64 * total
            };
            // Sort only as much of the head as needed: the nucleus is usually small.
            let mut m = 64.min(cands.len());
            loop {
                if m < cands.len() {
                    cands.select_nth_unstable_by(m - 1, order);
                }
                cands[..m].sort_unstable_by(order);
                let mut cum = 0.0f64;
                let mut keep = None;
                for (j, c) in cands[..m].iter().enumerate() {
                    cum += c.weight as f64;
                    if cum >= threshold {
                        keep = Some(j + 1);
                        break;
                    }
                }
                match keep {
                    Some(k) => {
                        cands.truncate(k);
                        break;
                    }
                    // Rounding left the sum just short of the threshold: keep everything.
                    None if m == cands.len() => break,
                    None => m = (m * 4).min(cands.len()),
                }
            }
        }
        let total: f64 = cands.iter().map(|c| c.weight as f64).sum();
        let r = self.rng.next_f64() * total;
        let mut acc = 0.0f64;
        for c in cands.iter() {
            acc += c.weight as f64;
            if acc > r {
                return c.id;
            }
        }
        // `r` can reach `total` only through rounding: take the last candidate.
        cands.last().map_or(0, |c| c.id)
    }
}

/// xoshiro256** (Blackman & Vigna), seeded through splitmix64.
#[derive(Debug, Clone)]
struct Xoshiro256 {
    s: [u64; 4],
}

impl Xoshiro256 {
    fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        // splitmix64 output is never all zero over four draws, so the state is valid.
        Xoshiro256 {
            s: [next(), next(), next(), next()],
        }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(temperature: f32, top_p: f32, top_k: usize, seed: u64) -> SamplerConfig {
        SamplerConfig {
            temperature,
            top_p,
            top_k,
            seed,
            ..SamplerConfig::greedy()
        }
    }

    /// Pseudo-random logits in roughly [-4, 4].
    fn logits(n: usize, salt: u64) -> Vec<f32> {
        let mut r = Xoshiro256::new(salt);
        (0..n).map(|_| (r.next_f64() * 8.0 - 4.0) as f32).collect()
    }

    #[test]
    fn default_is_greedy() {
        assert_eq!(SamplerConfig::default(), SamplerConfig::greedy());
        assert_eq!(SamplerConfig::default().temperature, 0.0);
    }

    #[test]
    fn greedy_is_argmax() {
        let mut s = Sampler::new(SamplerConfig::greedy());
        for salt in 0..20 {
            let l = logits(1000, salt);
            assert_eq!(s.sample(&l), argmax(&l));
        }
    }

    #[test]
    fn empty_and_nan_logits_do_not_panic() {
        for c in [SamplerConfig::greedy(), cfg(1.0, 0.9, 40, 1), cfg(0.7, 1.0, 0, 2)] {
            let mut s = Sampler::new(SamplerConfig {
                presence_penalty: 0.5,
                frequency_penalty: 0.5,
                ..c
            });
            assert_eq!(s.sample(&[]), 0);
            assert_eq!(s.sample(&[f32::NAN, f32::NAN]), 0);
            assert_eq!(s.sample(&[f32::NAN, 1.0, f32::NAN]), 1);
            assert_eq!(s.sample(&[f32::NEG_INFINITY, f32::INFINITY, f32::NAN]), 1);
            let t = s.sample(&[0.0, f32::NAN, 0.0]);
            assert!(t == 0 || t == 2);
        }
    }

    #[test]
    fn same_seed_same_tokens_different_seed_different_tokens() {
        let run = |seed: u64| {
            let mut s = Sampler::new(cfg(1.0, 1.0, 0, seed));
            (0..64).map(|i| s.sample(&logits(500, i))).collect::<Vec<u32>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));

        let mut s = Sampler::new(cfg(1.0, 0.9, 50, 3));
        let a: Vec<u32> = (0..32).map(|i| s.sample(&logits(500, i))).collect();
        s.reset();
        let b: Vec<u32> = (0..32).map(|i| s.sample(&logits(500, i))).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn top_k_one_is_greedy() {
        for temperature in [0.1, 1.0, 5.0, 1000.0] {
            let mut s = Sampler::new(cfg(temperature, 1.0, 1, 11));
            for salt in 0..20 {
                let mut l = logits(300, salt);
                // A tie at the top: the lower id must win, as in argmax.
                let m = l[argmax(&l) as usize];
                l[299] = m;
                assert_eq!(s.sample(&l), argmax(&l));
            }
        }
    }

    #[test]
    fn tiny_top_p_is_greedy() {
        // Below the largest probability (at least 1/5000 here), the nucleus is the arg-max alone.
        for top_p in [0.0, 1e-9, 1e-4] {
            let mut s = Sampler::new(cfg(1.0, top_p, 0, 5));
            for salt in 0..20 {
                let l = logits(5000, salt);
                assert_eq!(s.sample(&l), argmax(&l));
            }
        }
    }

    #[test]
    fn top_p_and_top_k_restrict_the_choice() {
        // Probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.75 keeps {0, 1}; top_k 3 keeps {0, 1, 2}.
        let l: Vec<f32> = [0.5f32, 0.3, 0.15, 0.05].iter().map(|p| p.ln()).collect();
        let mut s = Sampler::new(cfg(1.0, 0.75, 0, 9));
        let mut seen = [0u32; 4];
        for _ in 0..2000 {
            seen[s.sample(&l) as usize] += 1;
        }
        assert!(seen[0] > 0 && seen[1] > 0 && seen[2] == 0 && seen[3] == 0, "{seen:?}");
        let mut s = Sampler::new(cfg(1.0, 1.0, 3, 9));
        let mut seen = [0u32; 4];
        for _ in 0..2000 {
            seen[s.sample(&l) as usize] += 1;
        }
        assert!(seen[..3].iter().all(|&n| n > 0) && seen[3] == 0, "{seen:?}");
        // The nucleus search grows past its first batch on a flat distribution.
        let flat = vec![0.0f32; 1000];
        let mut s = Sampler::new(cfg(1.0, 0.5, 0, 9));
        for _ in 0..200 {
            assert!(s.sample(&flat) < 500);
        }
    }

    #[test]
    fn penalties_change_the_choice() {
        let l = [2.0f32, 1.5, 0.0];
        // No penalty: always token 0.
        let mut s = Sampler::new(SamplerConfig::greedy());
        assert_eq!([s.sample(&l), s.sample(&l), s.sample(&l)], [0, 0, 0]);
        // Presence 1.0: token 0 drops to 1.0 < 1.5 after its first use; then token 1 drops to 0.5.
        let mut s = Sampler::new(SamplerConfig {
            presence_penalty: 1.0,
            ..SamplerConfig::greedy()
        });
        assert_eq!([s.sample(&l), s.sample(&l), s.sample(&l)], [0, 1, 0]);
        // Frequency 0.3: 2.0, 1.7 (>1.5), 1.4 (<1.5) → 0, 0, 1.
        let mut s = Sampler::new(SamplerConfig {
            frequency_penalty: 0.3,
            ..SamplerConfig::greedy()
        });
        assert_eq!([s.sample(&l), s.sample(&l), s.sample(&l)], [0, 0, 1]);
        // A small presence penalty does not change the order.
        let mut s = Sampler::new(SamplerConfig {
            presence_penalty: 0.1,
            ..SamplerConfig::greedy()
        });
        assert_eq!([s.sample(&l), s.sample(&l)], [0, 0]);
        // reset forgets the counts.
        let mut s = Sampler::new(SamplerConfig {
            presence_penalty: 1.0,
            ..SamplerConfig::greedy()
        });
        assert_eq!(s.sample(&l), 0);
        s.reset();
        assert_eq!(s.sample(&l), 0);
        // The caller's logits are left alone.
        assert_eq!(l, [2.0, 1.5, 0.0]);
    }

    #[test]
    fn temperature_one_matches_the_distribution() {
        let p = [0.2f64, 0.3, 0.5];
        let l: Vec<f32> = p.iter().map(|x| (x.ln() + 3.0) as f32).collect();
        let mut s = Sampler::new(cfg(1.0, 1.0, 0, 42));
        let n = 20_000;
        let mut counts = [0usize; 3];
        for _ in 0..n {
            counts[s.sample(&l) as usize] += 1;
        }
        for (c, p) in counts.iter().zip(p) {
            let f = *c as f64 / n as f64;
            assert!((f - p).abs() < 0.02, "frequency {f} vs probability {p} ({counts:?})");
        }
        // Temperature 2 flattens: probabilities ∝ sqrt(p).
        let q: Vec<f64> = p.iter().map(|x| x.sqrt()).collect();
        let qs: f64 = q.iter().sum();
        let mut s = Sampler::new(cfg(2.0, 1.0, 0, 43));
        let mut counts = [0usize; 3];
        for _ in 0..n {
            counts[s.sample(&l) as usize] += 1;
        }
        for (c, q) in counts.iter().zip(&q) {
            let f = *c as f64 / n as f64;
            assert!(
                (f - q / qs).abs() < 0.02,
                "frequency {f} vs probability {} ({counts:?})",
                q / qs
            );
        }
    }
}
