//! Whether the store answers a question at all: how much of the question the best units hold
//! ([`support`]), moved by the best unit's rank score and, with a sentence encoder, by how near
//! in meaning the nearest of them is, against a bar that bends with the question's length, is a
//! little lower for a question that names code and higher for one that asks whether the code
//! does something at all ([`Retrieval::answers`]).

use std::collections::BTreeSet;

use crate::question::Question;
use crate::retrieve::Candidate;

/// A question whose best units contain less than this share of its content words (weighted by
/// rarity), moved by how well the best unit scores ([`TOP_SCORE_WEIGHT`]), is not answered by the
/// store (calibrated on `benches/qa`).
pub const ABSTAIN_BELOW: f32 = 0.64;
/// How much the best unit's score above [`TOP_SCORE_MID`] adds to support when deciding
/// whether to answer: a unit that meets the question well outweighs a few missing words (it only
/// adds, so a small store's lower scores never take support away).
const TOP_SCORE_WEIGHT: f32 = 0.03;
/// The best unit's score above which it adds to support.
const TOP_SCORE_MID: f32 = 12.0;
/// With a sentence encoder, the bar [`ABSTAIN_BELOW`] stands for: support, plus
/// [`MEANING_SUPPORT_WEIGHT`] times how near in meaning the question is to the nearest of the
/// best units (calibrated on `benches/qa`: a question the store cannot answer is on average
/// 0.34 from its nearest unit, one it answers 0.53). Set to 0.95 on five sets; raised to 0.97
/// on the ten sets and six probes, where it refuses 2 more of 67 unanswerable questions and 3
/// more answerable ones, none of them answered first before (docs/benchmarks.md). Since it
/// bends with the question's length ([`LENGTH_SLOPE`]), 0.98 at [`LENGTH_PIVOT`] words.
pub const ABSTAIN_BELOW_WITH_MEANING: f32 = 0.98;
/// How much lower the bar with a sentence encoder is for each content word of the question
/// beyond [`LENGTH_PIVOT`] (and higher for a shorter question, by one step at most): every
/// word of a long question is one more chance to say in other words what the code says, so
/// its support is lower whether or not the store answers it (on `benches/qa`, answered
/// questions of eleven words or more held 0.71 of their words, those of five to seven 0.84;
/// questions the store cannot answer held about 0.5 at any length). Set on the feature dumps
/// of the ten sets, seven probes and two probes written later (docs/benchmarks.md).
const LENGTH_SLOPE: f32 = 0.02;
/// The question length (content words) at which the bar is [`ABSTAIN_BELOW_WITH_MEANING`].
const LENGTH_PIVOT: f32 = 6.0;
/// How much lower the bar with a sentence encoder is for a question that names, written as
/// code, something the store defines. Naming the API does not make a question about what it
/// lacks answerable ("How do I read a varint from a `Buf`?", "How do I await a message from a
/// `Receiver`?"): such questions are judged like the others, the bar a little lower (on the
/// twenty-five sets of `benches/qa`, 151 questions name code: every answerable one clears the
/// bar less 0.05, and 3 of the 4 the store cannot answer fall below it; docs/benchmarks.md).
/// Without an encoder a question that names code is answered whatever its support.
const NAMED_EASE: f32 = 0.05;
/// How much higher the bar with a sentence encoder is for a question that asks whether the code
/// does something at all ("How do I …?", "Is there a way to …?", "Can the library …?", "Does the
/// router …?"): it presupposes nothing, so the store must show more of it than for a question
/// that asks where or how something it does is done. On the twenty-five sets of `benches/qa`,
/// 47 questions begin so, 32 of them unanswerable; at +0.2 the bar refuses 9 more of those
/// (fresh probes 8 → 12 of 16, crossbeam's four 5 → 9 of 12) and 1 more answerable question,
/// which was missed anyway; no question answered first is refused (docs/benchmarks.md).
const WHETHER_RAISE: f32 = 0.2;
/// How much the nearest unit's similarity in meaning adds to support.
const MEANING_SUPPORT_WEIGHT: f32 = 0.8;

/// The result of retrieval: the best units and how well the store supports the question.
#[derive(Debug, Clone)]
pub struct Retrieval {
    /// The best units, best first.
    pub candidates: Vec<Candidate>,
    /// The share of the question's content words (weighted by rarity) the best units hold, 0…1.
    pub support: f32,
    /// Whether the question names, written as code (`url_for`, `Router.handle`), something the
    /// store defines: the bar for answering it is lower (`NAMED_EASE`; without an encoder it is
    /// answered whatever its support).
    pub named: bool,
    /// The rank score of the best unit before the sentence encoder's re-rank (without the
    /// `unused` tie-breaker).
    pub best_score: f32,
    /// With a sentence encoder: how near in meaning the question is to the nearest of the best
    /// units (cosine similarity, −1…1).
    pub meaning: Option<f32>,
    /// How many content words the question has (its length as the bar reads it).
    pub terms: usize,
    /// Whether the question asks whether the code does something at all ("How do I …?", "Is
    /// there …?"): the bar with an encoder is higher (`WHETHER_RAISE`).
    pub asks_whether: bool,
}

impl Retrieval {
    /// Whether the store answers the question at all (see [`ABSTAIN_BELOW`]).
    pub fn answers(&self) -> bool {
        if self.candidates.is_empty() {
            return false;
        }
        let support = self.support + TOP_SCORE_WEIGHT * (self.best_score - TOP_SCORE_MID).max(0.0);
        match self.meaning {
            Some(m) => {
                let longer = (self.terms as f32 - LENGTH_PIVOT).max(-1.0);
                let eased = if self.named { NAMED_EASE } else { 0.0 };
                let raised = if self.asks_whether { WHETHER_RAISE } else { 0.0 };
                let bar = ABSTAIN_BELOW_WITH_MEANING - LENGTH_SLOPE * longer - eased + raised;
                support + MEANING_SUPPORT_WEIGHT * m >= bar
            }
            None => self.named || support >= ABSTAIN_BELOW,
        }
    }
}

/// How much of the question the store holds, 0…1: each content term weighs its idf over all
/// units (a term no unit holds weighs as much as the rarest term can) and counts fully when one
/// of the best units holds it, half when only other units do, not at all when no unit does.
/// A question about something the store does not have (GPU memory in a CLI library, HTTP
/// retries in a TOML parser) misses its rarest words altogether.
pub(crate) fn support(q: &Question, idf_in_store: &[(f32, bool)], cands: &[Candidate]) -> f32 {
    if cands.is_empty() || q.content.is_empty() {
        return if cands.is_empty() { 0.0 } else { 1.0 };
    }
    let mut have: BTreeSet<String> = BTreeSet::new();
    for c in cands.iter().take(SUPPORT_UNITS) {
        for t in rwkv_index::tokenizer::tokenize_indexed(&format!("{} {} {}", c.path, c.name, c.text)) {
            have.insert(t.text);
        }
    }
    let (mut covered, mut total) = (0.0, 0.0);
    for (t, &(idf, in_store)) in q.content.iter().zip(idf_in_store) {
        total += idf;
        if have.contains(t) {
            covered += idf;
        } else if in_store {
            covered += 0.5 * idf;
        }
    }
    if total > 0.0 { covered / total } else { 0.0 }
}

/// Units whose words count as "the best units" for [`support`].
const SUPPORT_UNITS: usize = 5;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieve::tests::unit;

    #[test]
    fn meaning_decides_with_support_whether_the_store_answers() {
        let long = |support: f32, meaning: Option<f32>, named: bool, terms: usize| Retrieval {
            candidates: vec![unit("x", "fn x() {}", 12.0)],
            support,
            named,
            best_score: 12.0,
            meaning,
            terms,
            asks_whether: false,
        };
        let r = |support: f32, meaning: Option<f32>, named: bool| long(support, meaning, named, 7);
        // Without an encoder: support alone.
        assert!(r(0.7, None, false).answers());
        assert!(!r(0.5, None, false).answers());
        // Half the words, but the nearest unit means what the question asks.
        assert!(r(0.5, Some(0.6), false).answers());
        // Most of the words, yet nothing near in meaning: a question about something else.
        assert!(!r(0.65, Some(0.3), false).answers());
        // A name written as code is answered whatever its support without an encoder; with
        // one, the bar is a little lower, not gone.
        assert!(r(0.1, None, true).answers());
        assert!(!r(0.1, Some(0.1), true).answers());
        assert!(r(0.5, Some(0.52), true).answers());
        assert!(!r(0.5, Some(0.52), false).answers());
        // Half the words of a long question, fairly near in meaning: its other words say in
        // other words what the code says; the same share of a short question is too little.
        assert!(long(0.55, Some(0.4), false, 12).answers());
        assert!(!long(0.55, Some(0.4), false, 6).answers());
        // "Is there a way to …?" must be shown more of than "Where is … done?".
        let mut whether = r(0.6, Some(0.5), false);
        assert!(whether.answers());
        whether.asks_whether = true;
        assert!(!whether.answers());
        // Without an encoder the bar is support alone, as before.
        let mut plain = r(0.7, None, false);
        plain.asks_whether = true;
        assert!(plain.answers());
        let mut none = r(0.9, Some(0.9), true);
        none.candidates.clear();
        assert!(!none.answers());
    }
}
