//! Copies among the best units: the same text in several documents (a book's one-page print
//! beside its chapters, vendored files) and near copies (a bundle's copy of a module's
//! function) are kept once, from the smallest document, the others listed as its duplicates.

use std::collections::{BTreeMap, BTreeSet};

use crate::rank::SHORTER;
use crate::retrieve::{Candidate, last_name, word_set};

/// The best `top` of `cands` (in rank order), each text once: the same text in several
/// documents is kept from the smallest document, the others listed as its duplicates; a
/// declaration without a body (an overload signature, a prototype) after its implementation
/// adds nothing and is dropped.
pub(crate) fn distinct(cands: Vec<Candidate>, top: usize) -> Vec<Candidate> {
    let mut kept: Vec<Candidate> = Vec::new();
    for c in cands {
        if c.text.trim().is_empty() {
            continue;
        }
        if c.features[SHORTER] == 1.0 && kept.iter().any(|k| k.path == c.path && k.name == c.name) {
            continue;
        }
        if let Some(k) = kept.iter_mut().find(|k| k.text_hash == c.text_hash) {
            if c.doc_bytes < k.doc_bytes {
                let mut c = c;
                c.score = k.score;
                c.duplicates = std::mem::take(&mut k.duplicates);
                c.duplicates.push(k.path.clone());
                *k = c;
            } else if !k.duplicates.contains(&c.path) && k.path != c.path {
                k.duplicates.push(c.path.clone());
            }
            continue;
        }
        kept.push(c);
        if kept.len() >= top.max(1) * 4 {
            break;
        }
    }
    kept.truncate(top.max(1));
    kept
}

/// Near copies: a unit with the qualified name and nearly all the words of a better-ranked
/// unit of another document (a bundle's copy of a module's function, `dist/axios.js` beside
/// `lib/helpers/combineURLs.js`; a vendored copy with small edits) takes that unit's text
/// hash, so that it is read by the encoder and kept once, as an exact copy is.
pub(crate) fn alias_near_copies(cands: &mut [Candidate]) {
    // Same qualified name: `Table.set_implicit` and `InlineTable.set_implicit` are two
    // implementations however alike, not copies. A bundler's renaming (`toFormData$1`) is
    // undone.
    let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, c) in cands.iter().enumerate() {
        if !last_name(&c.name).is_empty() {
            by_name.entry(unbundled(&c.name)).or_default().push(i);
        }
    }
    let mut alias: Vec<(usize, usize)> = Vec::new();
    for same in by_name.values().filter(|v| v.len() > 1) {
        let words: Vec<BTreeSet<String>> = same.iter().map(|&i| word_set(&cands[i].text)).collect();
        // Each unit against the better-ranked ones that are not copies themselves.
        let mut originals: Vec<usize> = Vec::new();
        for (a, &i) in same.iter().enumerate() {
            let near = originals.iter().copied().find(|&b| {
                let j = same[b];
                cands[j].path != cands[i].path
                    && cands[j].text_hash != cands[i].text_hash
                    && near_copy(&words[a], &words[b])
            });
            match near {
                Some(b) => alias.push((i, same[b])),
                None => originals.push(a),
            }
        }
    }
    for (i, j) in alias {
        cands[i].text_hash = cands[j].text_hash.clone();
    }
}

/// A qualified name without the `$1`, `$2` a bundler adds to names that would clash.
fn unbundled(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (k, part) in name.split('.').enumerate() {
        if k > 0 {
            out.push('.');
        }
        let trimmed = part.trim_end_matches(|c: char| c.is_ascii_digit());
        out.push_str(match trimmed.strip_suffix('$') {
            Some(base) if trimmed.len() < part.len() && !base.is_empty() => base,
            _ => part,
        });
    }
    out
}

/// Whether two units' word sets are nearly the same: at least [`NEAR_COPY_SHARE`] of the words
/// of either are shared, and there are enough of them to tell.
fn near_copy(a: &BTreeSet<String>, b: &BTreeSet<String>) -> bool {
    let shared = a.intersection(b).count();
    let union = a.len() + b.len() - shared;
    a.len().min(b.len()) >= NEAR_COPY_MIN_WORDS && shared as f32 >= NEAR_COPY_SHARE * union as f32
}

/// The share of their words (of all the words of both) two units share to be near copies.
const NEAR_COPY_SHARE: f32 = 0.8;
/// The fewest distinct words a unit has to count as a near copy of another.
const NEAR_COPY_MIN_WORDS: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieve::tests::unit;

    #[test]
    fn overload_signatures_after_their_implementation_are_dropped() {
        let implementation = unit("switchMap", "function switchMap(p) {\n  return op(p);\n}", 26.0);
        let mut signature = unit("switchMap", "function switchMap(p: P): R;", 19.0);
        signature.text_hash = "sig".into();
        signature.features[SHORTER] = 1.0;
        let other = unit("mergeMap", "function mergeMap(p) {}", 18.0);
        let kept = distinct(vec![implementation.clone(), signature.clone(), other], 3);
        let names: Vec<&str> = kept.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(names, [implementation.text.as_str(), "function mergeMap(p) {}"]);
        // A signature alone (its implementation not among the best) stays.
        let kept = distinct(vec![signature], 3);
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn a_bundles_copy_is_kept_once_from_the_module() {
        let body = "function combineURLs(baseURL, relativeURL) {\n  // Creates a new URL by combining the specified URLs\n  return relativeURL\n    ? baseURL.replace(/\\/?\\/$/, '') + '/' + relativeURL.replace(/^\\/+/, '')\n    : baseURL;\n}";
        let mut bundled = unit("combineURLs", body, 18.0);
        bundled.path = "dist/esm/axios.js".into();
        bundled.doc_bytes = 98_000;
        bundled.text_hash = "bundle".into();
        let mut module = unit("combineURLs", &format!("export default {body}"), 17.0);
        module.text_hash = "module".into();
        // Another type's method of the same name and nearly the same words is no copy.
        let mut other = unit("InlineTable.combineURLs", body, 16.0);
        other.path = "lib/inline.js".into();
        other.text_hash = "other".into();
        let mut cands = vec![bundled, module, other];
        alias_near_copies(&mut cands);
        let kept = distinct(cands, 3);
        let kept: Vec<(&str, &[String])> = kept
            .iter()
            .map(|c| (c.path.as_str(), c.duplicates.as_slice()))
            .collect();
        assert_eq!(
            kept,
            [
                ("lib/combineURLs.js", &["dist/esm/axios.js".to_string()][..]),
                ("lib/inline.js", &[][..])
            ]
        );
        assert_eq!(unbundled("toFormData$1.defaultVisitor"), "toFormData.defaultVisitor");
        assert_eq!(unbundled("$.ajax$"), "$.ajax$");
        assert_eq!(unbundled("a$b"), "a$b");
    }
}
