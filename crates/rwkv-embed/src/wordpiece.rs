//! BERT's WordPiece tokenizer: text cleaned, split at white space and punctuation (CJK
//! ideographs one by one), lower-cased and stripped of accents when the model was trained so,
//! then each word split greedily into the longest pieces of the vocabulary (`##` marks a piece
//! inside a word). A word with no such split becomes `[UNK]`.

use std::collections::HashMap;

use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::UnicodeNormalization;

/// Words longer than this many characters become `[UNK]` (as BERT's tokenizer does).
const MAX_WORD_CHARS: usize = 100;

/// A WordPiece vocabulary and how to prepare text for it.
#[derive(Debug, Clone)]
pub struct WordPiece {
    ids: HashMap<String, u32>,
    lower: bool,
    unk: u32,
    cls: u32,
    sep: u32,
}

impl WordPiece {
    /// A tokenizer over `vocab` (one piece per id, in order); `lower`: lower-case and strip
    /// accents first. `None` when the vocabulary lacks `[UNK]`, `[CLS]` or `[SEP]`.
    pub fn new(vocab: &[&str], lower: bool) -> Option<WordPiece> {
        let ids: HashMap<String, u32> = vocab
            .iter()
            .enumerate()
            .map(|(i, w)| ((*w).to_string(), i as u32))
            .collect();
        Some(WordPiece {
            unk: *ids.get("[UNK]")?,
            cls: *ids.get("[CLS]")?,
            sep: *ids.get("[SEP]")?,
            ids,
            lower,
        })
    }

    /// Number of pieces.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the vocabulary is empty (never, for a tokenizer [`WordPiece::new`] made).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// `[CLS]`, the pieces of `text`, `[SEP]`: at most `max_len` ids (the text's end is cut).
    pub fn encode(&self, text: &str, max_len: usize) -> Vec<u32> {
        let max_len = max_len.max(2);
        let mut out = vec![self.cls];
        'words: for word in self.words(text) {
            for id in self.pieces(&word) {
                if out.len() >= max_len - 1 {
                    break 'words;
                }
                out.push(id);
            }
        }
        out.push(self.sep);
        out
    }

    /// The words of `text` as BERT's basic tokenizer splits them.
    pub fn words(&self, text: &str) -> Vec<String> {
        let mut cleaned = String::with_capacity(text.len());
        for c in text.chars() {
            if c == '\0' || c == '\u{fffd}' || (is_control(c) && !c.is_whitespace()) {
                continue;
            }
            if is_cjk(c) {
                cleaned.push(' ');
                cleaned.push(c);
                cleaned.push(' ');
            } else if c.is_whitespace() {
                cleaned.push(' ');
            } else {
                cleaned.push(c);
            }
        }
        let mut words = Vec::new();
        for token in cleaned.split(' ').filter(|t| !t.is_empty()) {
            let token: String = if self.lower {
                token
                    .to_lowercase()
                    .nfd()
                    .filter(|&c| get_general_category(c) != GeneralCategory::NonspacingMark)
                    .collect()
            } else {
                token.to_string()
            };
            let mut cur = String::new();
            for c in token.chars() {
                if is_punctuation(c) {
                    if !cur.is_empty() {
                        words.push(std::mem::take(&mut cur));
                    }
                    words.push(c.to_string());
                } else {
                    cur.push(c);
                }
            }
            if !cur.is_empty() {
                words.push(cur);
            }
        }
        words
    }

    /// The pieces of one word, longest first from the left; `[UNK]` when it cannot be split.
    fn pieces(&self, word: &str) -> Vec<u32> {
        let chars: Vec<(usize, char)> = word.char_indices().collect();
        if chars.len() > MAX_WORD_CHARS {
            return vec![self.unk];
        }
        let mut out = Vec::new();
        let mut start = 0;
        let mut piece = String::new();
        while start < chars.len() {
            let from = chars[start].0;
            let mut end = chars.len();
            let mut found = None;
            while start < end {
                let to = chars.get(end).map_or(word.len(), |c| c.0);
                piece.clear();
                if start > 0 {
                    piece.push_str("##");
                }
                piece.push_str(&word[from..to]);
                if let Some(&id) = self.ids.get(&piece) {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => out.push(id),
                None => return vec![self.unk],
            }
            start = end;
        }
        out
    }
}

/// Control characters as BERT counts them (tab, newline and return are white space instead).
fn is_control(c: char) -> bool {
    matches!(
        get_general_category(c),
        GeneralCategory::Control | GeneralCategory::Format
    )
}

/// Punctuation as BERT counts it: every ASCII symbol that is not a letter, digit or space, and
/// the Unicode punctuation categories.
fn is_punctuation(c: char) -> bool {
    let u = c as u32;
    if (33..=47).contains(&u) || (58..=64).contains(&u) || (91..=96).contains(&u) || (123..=126).contains(&u) {
        return true;
    }
    matches!(
        get_general_category(c),
        GeneralCategory::ConnectorPunctuation
            | GeneralCategory::DashPunctuation
            | GeneralCategory::OpenPunctuation
            | GeneralCategory::ClosePunctuation
            | GeneralCategory::InitialPunctuation
            | GeneralCategory::FinalPunctuation
            | GeneralCategory::OtherPunctuation
    )
}

/// CJK ideographs, which BERT's tokenizer takes one by one.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> WordPiece {
        let vocab = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "edit", "##dis", "##tance", "(", ")", ",", "a", "b", "cafe", "un",
            "##want", "##ed", "_",
        ];
        WordPiece::new(&vocab, true).unwrap()
    }

    #[test]
    fn words_split_at_spaces_and_punctuation_lower_cased_without_accents() {
        let t = tiny();
        assert_eq!(t.words("editDistance(a, b)"), ["editdistance", "(", "a", ",", "b", ")"]);
        assert_eq!(t.words("  Café\tUN_wanted\n"), ["cafe", "un", "_", "wanted"]);
        assert_eq!(t.words("\u{0}\u{200b}x"), ["x"]);
        assert_eq!(t.words("中文"), ["中", "文"]);
    }

    #[test]
    fn pieces_are_the_longest_from_the_left() {
        let t = tiny();
        assert_eq!(t.encode("editDistance(a, b)", 64), [2, 4, 5, 6, 7, 10, 9, 11, 8, 3]);
        assert_eq!(t.encode("unwanted", 64), [2, 13, 14, 15, 3]);
        // No split: the whole word is unknown.
        assert_eq!(t.encode("unwantedx", 64), [2, 1, 3]);
        assert_eq!(t.encode(&"a".repeat(101), 64), [2, 1, 3]);
        // Cut to the length, [SEP] kept.
        assert_eq!(t.encode("edit edit edit edit", 4), [2, 4, 4, 3]);
        assert_eq!(t.encode("", 64), [2, 3]);
    }
}
