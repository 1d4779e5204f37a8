//! The `code` tokenizer: words for prose, and identifiers split into their parts, so a search
//! for `fold document`, `fold_document` or `FoldDocument` finds all three spellings.
//!
//! A word is a run of letters, digits and `_`. A word with several parts (split at `_` and at
//! camelCase boundaries: `HTTPServer` is `http` + `server`) yields the joined lowercase form
//! (`folddocument`) and then each part at consecutive positions; the joined form shares the
//! first part's position. A compound part (`getattr`, `getobjname`: [`crate::compounds`]) is
//! followed by its words, as if written `get_attr`, `get_obj_name`. Because `FoldDocument` and
//! `fold_document` give the same tokens, a query in either spelling (a phrase of joined form and
//! parts) matches both, and a query of separate words matches the parts. Everything is lowercased; tokens over 64 bytes are dropped.

pub use tantivy::tokenizer::Token;
use tantivy::tokenizer::{TokenStream, Tokenizer};

/// The name the index registers [`CodeTokenizer`] under (`code5`: with canonical forms, irregular
/// verbs, `-ically`/`-ily` words and compound parts split into up to four words; a new name makes older indexes
/// rebuild).
pub const CODE_TOKENIZER: &str = "code5";

const MAX_TOKEN_BYTES: usize = 64;

/// See the module docs.
#[derive(Clone, Debug, Default)]
pub struct CodeTokenizer;

/// The tokens of one text, computed up front.
pub struct CodeTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl Tokenizer for CodeTokenizer {
    type TokenStream<'a> = CodeTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CodeTokenStream {
        CodeTokenStream {
            tokens: tokenize_indexed(text),
            next: 0,
        }
    }
}

impl TokenStream for CodeTokenStream {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Split `text` into tokens as the module docs describe (what the index holds).
pub fn tokenize(text: &str) -> Vec<Token> {
    tokenize_opts(text, true)
}

/// [`tokenize`] with compound parts kept whole: a question's own words (`argparse` in a
/// question means the module, not "arg" and "parse"); a unit's `argparse` still holds both.
pub fn tokenize_whole(text: &str) -> Vec<Token> {
    tokenize_opts(text, false)
}

fn tokenize_opts(text: &str, split_compounds: bool) -> Vec<Token> {
    let mut out = Vec::new();
    let mut position = 0usize;
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if !is_word_char(c) {
            chars.next();
            continue;
        }
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if !is_word_char(c) {
                break;
            }
            end = i + c.len_utf8();
            chars.next();
        }
        let parts = split_identifier(&text[start..end], start);
        let n_parts = parts.len();
        let mut push = |from: usize, to: usize, text: String, position: usize| {
            if text.len() <= MAX_TOKEN_BYTES {
                out.push(Token {
                    offset_from: from,
                    offset_to: to,
                    position,
                    text,
                    position_length: 1,
                });
            }
        };
        if parts.len() > 1 {
            let joined: String = parts.iter().map(|p| p.2.as_str()).collect();
            push(start, end, joined, position);
        }
        // A compound part (`getattr`) is followed by its words, the first at its position and
        // the rest at the next ones, as if it had been written `get_attr`.
        let mut at = position;
        for (from, to, part) in parts {
            let ends = if split_compounds {
                crate::compounds::split(&part)
            } else {
                None
            };
            match ends {
                Some(ends) => {
                    let mut start = 0;
                    let words: Vec<(usize, usize)> = ends
                        .into_iter()
                        .chain([part.len()])
                        .map(|e| {
                            let w = (start, e);
                            start = e;
                            w
                        })
                        .collect();
                    push(from, to, part.clone(), at);
                    for (a, b) in words {
                        push(from + a, from + b, part[a..b].to_string(), at);
                        at += 1;
                    }
                }
                None => {
                    push(from, to, part, at);
                    at += 1;
                }
            }
        }
        position = at.max(position + n_parts.max(1));
    }
    out
}

/// [`tokenize`], each token followed (at its position) by its canonical form
/// ([`crate::terms::canon`]) when that differs: what the index stores, so a search by canonical
/// terms finds every spelling.
pub fn tokenize_indexed(text: &str) -> Vec<Token> {
    let base = tokenize(text);
    let mut out = Vec::with_capacity(base.len() * 3 / 2);
    for t in base {
        let c = crate::terms::canon(&t.text);
        let variant = (c != t.text).then(|| Token { text: c, ..t.clone() });
        out.push(t);
        out.extend(variant);
    }
    out
}

/// The canonical terms of `text` (each distinct, in order of first appearance; compounds whole,
/// see [`tokenize_whole`]): the search side of [`tokenize_indexed`].
pub fn canonical_terms(text: &str) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    tokenize_whole(text)
        .into_iter()
        .map(|t| crate::terms::canon(&t.text))
        .filter(|c| seen.insert(c.clone()))
        .collect()
}

/// The parts of one word: `(from, to, lowercase text)`, offsets shifted by `base`.
fn split_identifier(word: &str, base: usize) -> Vec<(usize, usize, String)> {
    let chars: Vec<(usize, char)> = word.char_indices().collect();
    let mut parts = Vec::new();
    let mut part_start: Option<usize> = None;
    let flush = |parts: &mut Vec<(usize, usize, String)>, from: Option<usize>, to: usize| {
        if let Some(from) = from
            && from < to
        {
            parts.push((base + from, base + to, word[from..to].to_lowercase()));
        }
    };
    for (k, &(i, c)) in chars.iter().enumerate() {
        if c == '_' {
            flush(&mut parts, part_start.take(), i);
            continue;
        }
        if let Some(from) = part_start {
            let prev = chars[k - 1].1;
            let next = chars.get(k + 1).map(|x| x.1);
            let boundary = c.is_uppercase()
                && (prev.is_lowercase()
                    || prev.is_numeric()
                    || (prev.is_uppercase() && next.is_some_and(|n| n.is_lowercase())));
            if boundary {
                flush(&mut parts, Some(from), i);
                part_start = Some(i);
            }
        } else {
            part_start = Some(i);
        }
    }
    flush(&mut parts, part_start, word.len());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<(String, usize)> {
        tokenize(s).into_iter().map(|t| (t.text, t.position)).collect()
    }

    fn t(s: &str, p: usize) -> (String, usize) {
        (s.to_string(), p)
    }

    #[test]
    fn splits_identifiers() {
        assert_eq!(
            texts("fold_document"),
            [t("folddocument", 0), t("fold", 0), t("document", 1)]
        );
        assert_eq!(
            texts("FoldDocument"),
            [t("folddocument", 0), t("fold", 0), t("document", 1)]
        );
        assert_eq!(
            texts("HTTPServer x"),
            [t("httpserver", 0), t("http", 0), t("server", 1), t("x", 2)]
        );
        assert_eq!(texts("rwkv::store.open"), [t("rwkv", 0), t("store", 1), t("open", 2)]);
        assert_eq!(texts("utf8Decode"), [t("utf8decode", 0), t("utf8", 0), t("decode", 1)]);
        assert_eq!(texts("__init__ v7"), [t("init", 0), t("v7", 1)]);
        assert_eq!(texts("Hello, wörld!"), [t("hello", 0), t("wörld", 1)]);
        assert!(texts("  ::  ").is_empty());
        assert_eq!(texts("getattr"), [t("getattr", 0), t("get", 0), t("attr", 1)]);
        assert_eq!(
            texts("_make_getattr x"),
            [
                t("makegetattr", 0),
                t("make", 0),
                t("getattr", 1),
                t("get", 1),
                t("attr", 2),
                t("x", 3)
            ]
        );
    }

    #[test]
    fn offsets_point_into_the_text() {
        let s = "let x = FoldDocument;";
        for tok in tokenize(s) {
            let slice = &s[tok.offset_from..tok.offset_to];
            assert!(
                slice.to_lowercase().replace('_', "").contains(&tok.text) || tok.text.contains(&slice.to_lowercase())
            );
        }
    }
}
