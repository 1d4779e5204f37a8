//! Meaning: a sentence encoder ([`rwkv_embed::Embedder`]) re-ranks the best units by how near
//! in meaning each is to the question, so the question's words and the code's need not be the
//! same ("how close a mistyped word is" → `editDistance`).

use std::collections::BTreeSet;

use crate::retrieve::{Candidate, by_score};

/// How much a unit's similarity in meaning to the question (cosine, −1…1) adds to its rank
/// score when a sentence encoder re-ranks the best units: 3 when it was set on five sets; 12 on
/// the twenty-one of `benches/qa`, where the sets written after the first tuning, and most of
/// all the long questions of the last four probes, gain from it (docs/benchmarks.md).
const MEANING_WEIGHT: f32 = 12.0;
/// [`MEANING_WEIGHT`] for a prose section (a doc or page section): the encoder, trained on
/// sentences, finds prose nearer any question than code, so its similarity counts for less.
const PROSE_MEANING_WEIGHT: f32 = 8.0;
/// The best units (distinct texts) a sentence encoder re-ranks: 10 when the weight was set on
/// five sets; 14 on the twenty-one of `benches/qa`, where the gold unit of more questions is
/// among them and the nearest of them tells a question the store answers better (ten sets:
/// hit@1 149 → 151, 13 → 10 answerable questions refused; docs/benchmarks.md). Each unit read
/// costs the encoder's time: 20 and 30 units gave no more.
const MEANING_UNITS: usize = 14;
/// Word pieces of a unit (and of the question) the sentence encoder reads.
const MEANING_TOKENS: usize = 256;

/// Re-rank the best units (`cands`, best first) by how near in meaning each is to the question
/// ([`MEANING_WEIGHT`] times the cosine similarity of their sentence embeddings, added to the
/// rank score): the question's words and the code's need not be the same. Returns the largest
/// similarity of those units.
pub(crate) fn rerank(embedder: &rwkv_embed::Embedder, question: &str, cands: &mut [Candidate]) -> f32 {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut picked: Vec<usize> = Vec::new();
    for (i, c) in cands.iter().enumerate() {
        if picked.len() == MEANING_UNITS {
            break;
        }
        if seen.insert(c.text_hash.as_str()) {
            picked.push(i);
        }
    }
    if picked.is_empty() {
        return 0.0;
    }
    let texts: Vec<String> = std::iter::once(question.to_string())
        .chain(picked.iter().map(|&i| {
            format!(
                "{} {}\n{}{}",
                cands[i].name, cands[i].path, cands[i].lent, cands[i].text
            )
        }))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let emb = embedder.embed(&refs, MEANING_TOKENS);
    let mut nearest = f32::NEG_INFINITY;
    let sims: Vec<f32> = emb[1..].iter().map(|e| rwkv_embed::similarity(&emb[0], e)).collect();
    for (&i, &sim) in picked.iter().zip(&sims) {
        nearest = nearest.max(sim);
        let hash = cands[i].text_hash.clone();
        // Every copy of the same text moves with it.
        for c in cands.iter_mut().filter(|c| c.text_hash == hash) {
            let weight = if c.kind == "section" {
                PROSE_MEANING_WEIGHT
            } else {
                MEANING_WEIGHT
            };
            c.score += weight * sim;
            c.meaning = Some(sim);
        }
    }
    cands.sort_by(by_score);
    nearest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieve::tests::unit;

    #[test]
    fn meaning_moves_the_unit_that_answers_up() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/models/all-minilm-l6-v2.bf16.safetensors");
        let e = rwkv_embed::Embedder::load(&path).unwrap();
        // Ranked by words, a unit that shares "word" and "names" comes first; the one that
        // measures how close two words are shares none of the question's words.
        let mut cands = vec![
            unit(
                "listNames",
                "function listNames(word) {\n  return names.map(n => word + n);\n}",
                10.2,
            ),
            unit(
                "editDistance",
                "function editDistance(a, b) {\n  // Damerau-Levenshtein distance between two strings\n  return d[a.length][b.length];\n}",
                10.0,
            ),
            unit(
                "wrap",
                "function wrap(str, width) {\n  // wrap text to the terminal width\n}",
                9.9,
            ),
        ];
        let q = "How does the library measure how close a mistyped word is to the names it knows?";
        let nearest = rerank(&e, q, &mut cands);
        assert_eq!(
            cands[0].name,
            "editDistance",
            "{:?}",
            cands.iter().map(|c| (&c.name, c.score)).collect::<Vec<_>>()
        );
        assert!(nearest > 0.2 && nearest < 1.0, "{nearest}");
        // Nothing to re-rank.
        assert_eq!(rerank(&e, q, &mut []), 0.0);
    }
}
