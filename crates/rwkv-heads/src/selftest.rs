//! The recall self-test: how far back can the model recall a fact it read?
//!
//! For each distance `D`, a fact ("The secret number of Ada is 4721.") is read from the zero
//! state, followed by `D` tokens of filler text taken from the store's own documents; then the
//! question is read and answered greedily, exactly as the answer head does after restoring a
//! checkpoint. Recall is the share of trials whose answer contains the number.

use std::ops::ControlFlow;

use crate::sample::SamplerConfig;
use rwkv_model::{Logits, State};
use serde::Serialize;

use crate::Result;
use crate::generate::{Template, generate, read};
use crate::library::Library;

/// Options of the self-test.
#[derive(Debug, Clone)]
pub struct SelfTestOptions {
    /// Distances in tokens between the fact and the question.
    pub distances: Vec<usize>,
    /// Facts asked per distance.
    pub trials: usize,
    /// Prompt template.
    pub template: Template,
}

impl Default for SelfTestOptions {
    fn default() -> Self {
        SelfTestOptions {
            distances: vec![100, 300, 1_000, 3_000, 10_000, 30_000, 100_000],
            trials: 3,
            template: Template::Plain,
        }
    }
}

/// Recall at one distance.
#[derive(Debug, Clone, Serialize)]
pub struct RecallRow {
    /// Tokens between the fact and the question.
    pub distance: usize,
    /// Facts asked.
    pub trials: usize,
    /// Facts recalled.
    pub recalled: usize,
    /// `recalled / trials`.
    pub recall: f32,
}

const NAMES: [&str; 8] = [
    "Ada",
    "Brahmagupta",
    "Cauchy",
    "Dedekind",
    "Emmy",
    "Fermat",
    "Galois",
    "Hypatia",
];

impl Library<'_> {
    /// Run the self-test, reporting each row as it is measured.
    pub fn self_test(&self, opts: &SelfTestOptions, on_row: &mut dyn FnMut(&RecallRow)) -> Result<Vec<RecallRow>> {
        let tok = self.tokenizer().clone();
        let model = self.model();
        let max = opts.distances.iter().copied().max().unwrap_or(0);
        let filler = self.filler_tokens(max)?;
        let mut rows = Vec::new();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for &d in &opts.distances {
            let mut recalled = 0;
            for t in 0..opts.trials {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let number = 1000 + (seed >> 33) % 9000;
                let name = NAMES[(t + d) % NAMES.len()];
                let mut state: State = model.new_state();
                let fact = format!("File: notes.txt\n\nThe secret number of {name} is {number}.\n");
                model.forward_seq(&tok.encode(&fact), &mut state, Logits::None)?;
                model.forward_seq(&filler[..d.min(filler.len())], &mut state, Logits::None)?;
                let q = format!("What is the secret number of {name}?");
                let logits = read(
                    model,
                    tok.as_ref(),
                    &mut state,
                    &format!("\n\n{}", opts.template.prompt(&q)),
                )?;
                let g = generate(
                    model,
                    tok.as_ref(),
                    &mut state,
                    logits,
                    &SamplerConfig::greedy(),
                    12,
                    opts.template.stop(),
                    &mut |_| ControlFlow::Continue(()),
                )?;
                if g.text.contains(&number.to_string()) {
                    recalled += 1;
                }
            }
            let row = RecallRow {
                distance: d,
                trials: opts.trials,
                recalled,
                recall: recalled as f32 / opts.trials.max(1) as f32,
            };
            on_row(&row);
            rows.push(row);
        }
        Ok(rows)
    }

    /// At least `n` tokens of filler from the stored documents (repeated if the store is small).
    fn filler_tokens(&self, n: usize) -> Result<Vec<u32>> {
        let mut toks = Vec::with_capacity(n);
        let docs = self.store().documents()?;
        let mut texts = Vec::new();
        for d in &docs {
            if let Some(t) = self.text_of(&d.id)? {
                texts.push(t);
            }
        }
        if texts.is_empty() {
            texts.push("The quick brown fox jumps over the lazy dog.\n".into());
        }
        while toks.len() < n {
            for t in &texts {
                toks.extend(self.tokenizer().encode(t));
                if toks.len() >= n {
                    break;
                }
            }
        }
        toks.truncate(n);
        Ok(toks)
    }
}
