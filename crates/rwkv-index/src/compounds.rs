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

/// The two words of a compound identifier part (`getattr` → `get` + `attr`), as the length of
/// the first; `None` for a word that is not one (`parser`, `present`). `part` is lowercase.
pub fn split(part: &str) -> Option<usize> {
    let n = part.len();
    if !(5..=40).contains(&n) || !part.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let w = words();
    let mut common: Option<bool> = None;
    let mut best: Option<(u32, usize)> = None;
    for i in 2..=n - 3 {
        let (a, b) = part.split_at(i);
        let Some(pa) = w.parts.get(a) else { continue };
        let Some(pb) = w.parts.get(b) else { continue };
        if *common.get_or_insert_with(|| w.common.contains(part))
            && !(PREFIXES.contains(&a) || (pa.wordy && pb.wordy && a.len() >= 4 && b.len() >= 4))
        {
            continue;
        }
        let s = pa.count.min(pb.count);
        if best.is_none_or(|(bs, _)| s > bs) {
            best = Some((s, i));
        }
    }
    best.map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn halves(w: &str) -> Option<(&str, &str)> {
        split(w).map(|i| w.split_at(i))
    }

    #[test]
    fn compounds_split_and_words_stay_whole() {
        assert_eq!(halves("getattr"), Some(("get", "attr")));
        assert_eq!(halves("envvar"), Some(("env", "var")));
        assert_eq!(halves("asdict"), Some(("as", "dict")));
        assert_eq!(halves("filename"), Some(("file", "name")));
        assert_eq!(halves("subcommand"), Some(("sub", "command")));
        assert_eq!(halves("isinstance"), Some(("is", "instance")));
        for w in [
            "parser", "present", "appends", "forget", "print", "about", "prevent", "program", "extends", "statuses",
            "handle", "pretty", "Getattr", "get",
        ] {
            assert_eq!(halves(w), None, "{w}");
        }
    }
}
