//! Compound identifier parts: `getattr`, `envvar`, `asdict`, `filename`, `subcommand` are two
//! words written as one, so a question's "environment variable" or "as a dictionary" never met
//! them. [`split`] finds the two words from counts of identifier parts and prose words in a
//! large body of code no QA set of this project comes from (`compound-words.txt`, written by
//! `scripts/compound-words.py`; the rules are in that script's docs).

use std::sync::OnceLock;

use rustc_hash::{FxHashMap, FxHashSet};

/// A part word: how often it was seen as an identifier part, and whether it is a common prose
/// word too.
#[derive(Clone, Copy)]
struct Part {
    count: u32,
    wordy: bool,
}

/// The word lists, in Fx hash tables: every indexed token looks a few short words up, where
/// SipHash would cost more than the rest of tokenizing.
struct Words {
    parts: FxHashMap<&'static str, Part>,
    /// Common prose words of six letters or more.
    common: FxHashSet<&'static str>,
}

/// First halves that make a compound even of a common word (`subclass`, `metadata`).
const PREFIXES: &[&str] = &["sub", "multi", "non", "auto", "meta", "super", "over"];

fn words() -> &'static Words {
    static WORDS: OnceLock<Words> = OnceLock::new();
    WORDS.get_or_init(|| {
        let mut parts = FxHashMap::default();
        let mut common = FxHashSet::default();
        for line in include_str!("compound-words.txt").lines() {
            let mut f = line.split(' ');
            match (f.next(), f.next(), f.next(), f.next()) {
                (Some("part"), Some(w), Some(n), Some(p)) => {
                    parts.insert(
                        w,
                        Part {
                            count: n.parse().unwrap_or(0),
                            wordy: p == "1",
                        },
                    );
                }
                (Some("common"), Some(w), None, None) => {
                    common.insert(w);
                }
                _ => {}
            }
        }
        Words { parts, common }
    })
}

/// A piece of a compound: an identifier part, or (as the last piece only) a common prose word
/// of six letters or more (`constfolding` → `const` + `folding`), counted as rarely seen.
fn piece(w: &Words, s: &str, last: bool) -> Option<u32> {
    match w.parts.get(s) {
        Some(p) => Some(p.count),
        None if last && w.common.contains(s) => Some(1),
        None => None,
    }
}

/// The most pieces a compound is split into (`funcnamefromcode` → `func`, `name`, `from`,
/// `code`).
const MAX_PIECES: usize = 4;

/// The split of `s` into at most `left` pieces (one only when `whole`) with the fewest pieces,
/// then the most-seen rarest piece: (pieces, rarest count, end of each piece but the last).
fn pieces(w: &Words, s: &str, left: usize, whole: bool) -> Option<(usize, u32, Vec<usize>)> {
    if let Some(n) = piece(w, s, true).filter(|_| whole) {
        return Some((1, n, Vec::new()));
    }
    let mut best: Option<(usize, u32, Vec<usize>)> = None;
    if left < 2 {
        return best;
    }
    for i in 2..=s.len().saturating_sub(3) {
        let Some(na) = piece(w, &s[..i], false) else { continue };
        let Some((k, nb, rest)) = pieces(w, &s[i..], left - 1, true) else {
            continue;
        };
        let (k, count) = (k + 1, na.min(nb));
        if best.as_ref().is_none_or(|b| k < b.0 || (k == b.0 && count > b.1)) {
            let mut ends = vec![i];
            ends.extend(rest.iter().map(|e| e + i));
            best = Some((k, count, ends));
        }
    }
    best
}

/// The words of a compound identifier part (`getattr` → `get` + `attr`; `getobjname` → `get`,
/// `obj`, `name`), as the end of every word but the last; `None` for a word that is not one
/// (`parser`, `present`). `part` is lowercase. A common English word is only ever split in
/// two, and only where [`PREFIXES`] or two wordy halves of four letters or more allow it.
pub fn split(part: &str) -> Option<Vec<usize>> {
    let n = part.len();
    if !(5..=40).contains(&n) || !part.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let w = words();
    if w.common.contains(part) {
        let mut best: Option<(u32, usize)> = None;
        for i in 2..=n - 3 {
            let (a, b) = part.split_at(i);
            let (Some(pa), Some(pb)) = (w.parts.get(a), w.parts.get(b)) else {
                continue;
            };
            if !(PREFIXES.contains(&a) || (pa.wordy && pb.wordy && a.len() >= 4 && b.len() >= 4)) {
                continue;
            }
            let s = pa.count.min(pb.count);
            if best.is_none_or(|(bs, _)| s > bs) {
                best = Some((s, i));
            }
        }
        return best.map(|(_, i)| vec![i]);
    }
    pieces(w, part, MAX_PIECES, false).map(|(_, _, ends)| ends)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn halves(w: &str) -> Option<(&str, &str)> {
        split(w).filter(|e| e.len() == 1).map(|e| w.split_at(e[0]))
    }

    fn words_of(w: &str) -> Vec<&str> {
        let ends = split(w).unwrap_or_default();
        let mut from = 0;
        let mut out = Vec::new();
        for e in ends.into_iter().chain([w.len()]) {
            out.push(&w[from..e]);
            from = e;
        }
        out
    }

    #[test]
    fn compounds_split_and_words_stay_whole() {
        assert_eq!(halves("getattr"), Some(("get", "attr")));
        assert_eq!(halves("envvar"), Some(("env", "var")));
        assert_eq!(halves("asdict"), Some(("as", "dict")));
        assert_eq!(halves("filename"), Some(("file", "name")));
        assert_eq!(halves("subcommand"), Some(("sub", "command")));
        assert_eq!(halves("isinstance"), Some(("is", "instance")));
        // More than two words, and a common word last.
        assert_eq!(words_of("getobjname"), ["get", "obj", "name"]);
        assert_eq!(words_of("funcnamefromcode"), ["func", "name", "from", "code"]);
        assert_eq!(words_of("constfolding"), ["const", "folding"]);
        // Fewest words first: `filename` is two words, not `file` + `na` + `me`.
        assert_eq!(words_of("getfilename"), ["get", "filename"]);
        for w in [
            "parser", "present", "appends", "forget", "print", "about", "prevent", "program", "extends", "statuses",
            "handle", "pretty", "Getattr", "get",
        ] {
            assert_eq!(split(w), None, "{w}");
        }
    }
}
