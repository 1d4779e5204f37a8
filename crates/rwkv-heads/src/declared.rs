//! Header comments lent to definitions: C and C++ say what a function does where a header
//! declares it (`// Return the level at which we should place …` above
//! `int PickLevelForMemTableOutput(…);`), and the definition in a `.cc` file has none of those
//! words. A question whose words such a comment holds brings the definition of that name, scored
//! as if the comment were its own.

use std::collections::{BTreeMap, BTreeSet};

use rwkv_index::{Index, name_key};

use crate::Result;
use crate::question::Question;
use crate::retrieve::{Candidate, Pooled, weighted_share, word_set};
use crate::unit_kind::has_no_body;

/// Least share of the question's words (by idf) a declaration's comment must hold to lend them
/// to its definition.
const LEND_SHARE: f32 = 0.3;
/// Most declarations whose definitions are looked up per question (the best by share).
const LEND_NAMES: usize = 8;
/// Units whose declarations' comments are searched for the question's words.
const DECLARING_UNITS: usize = 20;

/// The definitions that a bodiless declaration in a pooled unit describes with the question's
/// words (a C/C++ header comment above `int PickLevelForMemTableOutput(…);`, the definition in
/// a `.cc` file without those words): each joins the pool, and is given the comment's text to be
/// scored with as its own (returned by the definition's key).
pub(crate) fn lend_declared_words(
    index: &Index,
    q: &Question,
    idf: &[f32],
    idf_total: f32,
    by_key: &mut BTreeMap<(String, u64), Pooled>,
) -> Result<BTreeMap<(String, u64), String>> {
    let mut search: Vec<String> = q.content.clone();
    search.extend(q.related_all.iter().cloned());
    let declaring = index.search_declarations(&search, DECLARING_UNITS)?;
    let mut wanted: Vec<(f32, &str, &str)> = Vec::new();
    for c in &declaring {
        for (name, comment) in &c.declares {
            let words = word_set(comment);
            let have: BTreeSet<&str> = words.iter().map(String::as_str).collect();
            let share = weighted_share(q, idf, idf_total, &have);
            if share >= LEND_SHARE {
                wanted.push((share, name, comment));
            }
        }
    }
    wanted.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    let mut looked: BTreeSet<&str> = BTreeSet::new();
    let mut lent: BTreeMap<(String, u64), String> = BTreeMap::new();
    for &(_, name, comment) in &wanted {
        if looked.len() == LEND_NAMES {
            break;
        }
        if !looked.insert(name) {
            continue;
        }
        let last = name.rsplit('.').next().unwrap_or(name);
        for h in index.definitions(&[name_key(last)], 20)? {
            if !h.head || h.qualified_name() != name || has_no_body(&h.text) {
                continue;
            }
            let text = lent.entry((h.doc_id.clone(), h.seq)).or_default();
            if !text.contains(comment) {
                text.push_str(comment);
                text.push('\n');
            }
            by_key
                .entry((h.doc_id.clone(), h.seq))
                .or_insert_with(|| (Candidate::from_hit(&h), 0.0, 0.0, 0.0, 0.0));
        }
    }
    Ok(lent)
}
