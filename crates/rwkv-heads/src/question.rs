//! What a question asks, as the index sees it: its canonical content terms, the names it writes
//! as code or spells in words, the paths it names, and the related words of each term.

use std::collections::BTreeSet;

use rwkv_index::tokenizer::{tokenize, tokenize_whole};
use rwkv_index::{name_key, terms};

/// What a question asks, as the index sees it.
#[derive(Debug, Clone)]
pub(crate) struct Question {
    /// Canonical forms of every word and identifier part (stop words and the words of compound
    /// parts included).
    pub all: BTreeSet<String>,
    /// Canonical content terms (no stop words), in order.
    pub content: Vec<String>,
    /// Name keys of identifiers written as code, with how strongly they were written.
    pub code_keys: Vec<String>,
    /// The last part of each identifier written as code, spelled as written (`_copytree` of
    /// `shutil._copytree`): of several definitions one key names (`copytree`, `_copytree`,
    /// `copy_tree`), the one spelled so is meant.
    pub code_names: Vec<String>,
    /// Name keys made of consecutive words ("url for" → `urlfor`).
    pub word_keys: Vec<String>,
    /// Types the question names in prose beside what they are ("the Decor struct", "class
    /// Parameter"): the capitalised name's key and the kinds of definition the word says.
    pub typed: Vec<(String, &'static [&'static str])>,
    /// Paths or file names the question names (`src/reader.rs`, `helpers.py`).
    pub paths: Vec<String>,
    /// Whether the question is about tests or benchmarks.
    pub about_tests: bool,
    /// Whether the question asks whether the code does something at all ("How do I …?", "Is
    /// there a way to …?", "Can it …?", "Does the router …?") rather than where or how
    /// something it does is done ([`asks_whether`]).
    pub asks_whether: bool,
    /// For each content term, the canonical forms of related words ([`terms::related`]).
    pub related: Vec<Vec<String>>,
    /// All of them.
    pub related_all: BTreeSet<String>,
}

/// Whether a word of the question is written as code: `snake_case`, `camelCase`,
/// `Scope.name`, `a::b`, `name()`.
fn looks_like_code(w: &str) -> bool {
    let inner_upper = w.chars().skip(1).any(char::is_uppercase) && w.chars().any(char::is_lowercase);
    w.contains('_') || w.contains("::") || w.contains("()") || inner_upper || {
        let (a, b) = w.split_once('.').unwrap_or(("", ""));
        !a.is_empty() && !b.is_empty() && a.chars().all(|c| c.is_alphanumeric() || c == '_')
    }
}

impl Question {
    pub fn new(text: &str) -> Question {
        // Every form, compounds' words included (`dotenv` → `dot`, `env`), so that a name's
        // parts meet a question that writes the compound; `content` keeps compounds whole.
        let all: BTreeSet<String> = tokenize(text).into_iter().map(|t| terms::canon(&t.text)).collect();
        let whole = tokenize_whole(text);
        let mut content = Vec::new();
        for t in &whole {
            if t.text.len() < 2 || terms::is_stop_word(&t.text) || t.text.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let c = terms::canon(&t.text);
            if !content.contains(&c) {
                content.push(c);
            }
        }
        let mut code_keys = Vec::new();
        let push = |keys: &mut Vec<String>, k: String| {
            if k.len() >= 2 && !keys.contains(&k) {
                keys.push(k);
            }
        };
        // Backticked spans and words written as code.
        let raw_words: Vec<&str> = text
            .split(|c: char| c.is_whitespace() || "\"'(),?;!<>[]{}".contains(c))
            .map(|w| w.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')))
            .filter(|w| !w.is_empty())
            .collect();
        let mut coded: Vec<&str> = Vec::new();
        for (i, seg) in text.split('`').enumerate() {
            if i % 2 == 1 {
                coded.extend(
                    seg.split(|c: char| c.is_whitespace() || c == '(')
                        .filter(|w| !w.is_empty()),
                );
            }
        }
        for w in text.split(|c: char| c.is_whitespace() || "\"',?;!<>[]{}`".contains(c)) {
            let w = w.trim_end_matches(['.', ':']);
            if looks_like_code(w) {
                coded.push(w);
            }
        }
        let mut code_names: Vec<String> = Vec::new();
        for w in coded {
            let w = w.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'));
            let w = w.trim_end_matches("()");
            if let Some(last) = w.rsplit(['.', ':']).find(|p| !p.is_empty() && *p != "prototype")
                && !code_names.iter().any(|n| n == last)
            {
                code_names.push(last.to_string());
            }
            // `a::b::c`, `a.b.c`: the whole, `b.c` (scope.name) and the last part.
            let parts: Vec<&str> = w
                .split(['.', ':'])
                .filter(|p| !p.is_empty() && *p != "prototype")
                .collect();
            if parts.len() > 1 {
                let n = parts.len();
                push(
                    &mut code_keys,
                    format!("{}.{}", name_key(parts[n - 2]), name_key(parts[n - 1])),
                );
                push(&mut code_keys, name_key(parts[n - 1]));
            } else {
                push(&mut code_keys, name_key(w));
            }
        }
        // Consecutive words joined: "url for" → urlfor, "parse args method" → parseargs, …
        let mut word_keys = Vec::new();
        let words: Vec<String> = raw_words.iter().map(|w| name_key(w)).collect();
        for n in 2..=3 {
            for win in words.windows(n) {
                if win.iter().all(|w| terms::is_stop_word(w)) {
                    continue;
                }
                push(&mut word_keys, win.concat());
            }
        }
        // Canonical forms of consecutive words joined also name one part: "environment
        // variable" → `envvar`, "file name" → `filename`, "key word" → `keyword`.
        let mut all = all;
        let canon_words: Vec<String> = whole.iter().map(|t| terms::canon(&t.text)).collect();
        for w in canon_words.windows(2) {
            if !terms::is_stop_word(&w[0]) && !terms::is_stop_word(&w[1]) {
                all.insert(w.concat());
            }
        }
        // A capitalised word beside a word for a kind of type names a type of that kind
        // ("the Decor struct", "class Parameter"); the first word of the question is capitalised
        // anyway and does not count.
        let mut typed: Vec<(String, &'static [&'static str])> = Vec::new();
        for (i, w) in raw_words.iter().enumerate() {
            let Some(kinds) = type_kinds(w).or_else(|| callable_kinds(w)) else {
                continue;
            };
            for j in [i.wrapping_sub(1), i + 1] {
                let Some(name) = raw_words.get(j).filter(|_| j > 0) else {
                    continue;
                };
                // A callable is named in lowercase too, before its kind ("the json macro",
                // "the render method"); a type only when capitalised.
                let callable_name = j + 1 == i
                    && callable_kinds(w).is_some()
                    && !terms::is_stop_word(&name.to_lowercase())
                    && name.chars().all(|c| c.is_alphanumeric() || c == '_');
                if (name.starts_with(|c: char| c.is_uppercase()) || callable_name)
                    && type_kinds(name).is_none()
                    && callable_kinds(name).is_none()
                {
                    let key = name_key(name);
                    if key.len() >= 2 && !typed.iter().any(|(k, _)| *k == key) {
                        typed.push((key, kinds));
                    }
                }
            }
        }
        let paths: Vec<String> = text
            .split(|c: char| c.is_whitespace() || "`'\"(),?;!<>[]{}".contains(c))
            .map(|w| w.trim_end_matches(['.', ':']).trim_start_matches("./"))
            .filter(|w| looks_like_path(w))
            .map(str::to_string)
            .collect();
        let about_tests = all.iter().any(|t| t.starts_with("test") || t.starts_with("bench"));
        let asks_whether = asks_whether(text);
        let mut related: Vec<Vec<String>> = content
            .iter()
            .map(|t| terms::related(t).into_iter().filter(|r| !content.contains(r)).collect())
            .collect();
        // The initials of three or four words in a row stand for each of them ("byte order
        // mark" → `bom`, "time to live" → `ttl`, "command line interface" → `cli`).
        let lower: Vec<String> = raw_words.iter().map(|w| w.to_lowercase()).collect();
        for n in 3..=4 {
            for win in lower.windows(n) {
                // Inside, one short joining word at most ("time to live"): "cached
                // on disk" is not `cod`, and "runs of the program" not `rotp`.
                let joining = win[1..n - 1].iter().filter(|w| terms::is_stop_word(w)).count();
                if terms::is_stop_word(&win[0])
                    || terms::is_stop_word(&win[n - 1])
                    || joining > 1
                    || win[1..n - 1]
                        .iter()
                        .any(|w| terms::is_stop_word(w) && !INITIAL_JOINERS.contains(&w.as_str()))
                    || !win.iter().all(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
                {
                    continue;
                }
                let initials: String = win.iter().filter_map(|w| w.chars().next()).collect();
                if content.contains(&initials) {
                    continue;
                }
                for w in win {
                    if let Some(i) = content.iter().position(|c| *c == terms::canon(w))
                        && !related[i].contains(&initials)
                    {
                        related[i].push(initials.clone());
                    }
                }
            }
        }
        let related_all = related.iter().flatten().cloned().collect();
        Question {
            all,
            content,
            code_keys,
            code_names,
            word_keys,
            typed,
            paths,
            about_tests,
            asks_whether,
            related,
            related_all,
        }
    }
}

/// How questions that ask whether the code does something at all begin: "How do I …", "Is
/// there …", "Can I …", "Does the … ". A question that presupposes what it asks about ("Where
/// is the cache flushed?") does not.
const WHETHER_OPENINGS: &[&[&str]] = &[
    &["how", "do", "i"],
    &["how", "can", "i"],
    &["how", "would", "i"],
    &["is", "there"],
    &["are", "there"],
    &["is", "it", "possible"],
    &["can", "i"],
    &["can", "you"],
    &["can", "it"],
    &["can", "the"],
    &["can", "this"],
    &["can", "one"],
    &["do", "i"],
    &["do", "you"],
    &["does", "it"],
    &["does", "the"],
    &["does", "this"],
];

/// Whether `question` begins as one that asks whether the code does something at all (see
/// [`WHETHER_OPENINGS`]).
pub(crate) fn asks_whether(question: &str) -> bool {
    let words: Vec<String> = question
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .take(3)
        .map(str::to_lowercase)
        .collect();
    WHETHER_OPENINGS
        .iter()
        .any(|o| words.len() >= o.len() && words.iter().zip(o.iter()).all(|(w, o)| w == o))
}

/// Short words that may stand inside a phrase whose initials make an acronym ("time to live",
/// "search and replace").
const INITIAL_JOINERS: &[&str] = &["of", "to", "and", "in", "for", "by"];

/// The kinds of definition (`rwkv_symbols::SymbolKind::as_str`) a word for a kind of type
/// stands for.
fn type_kinds(word: &str) -> Option<&'static [&'static str]> {
    Some(match word.to_ascii_lowercase().as_str() {
        "struct" | "structure" => &["struct", "class"],
        "class" => &["class", "struct"],
        "enum" | "enumeration" => &["enum"],
        "trait" | "interface" | "protocol" => &["interface", "class"],
        "type" | "typedef" => &["type", "struct", "class", "enum", "interface"],
        "module" | "namespace" => &["module"],
        _ => return None,
    })
}

/// The kinds of definition a word for a kind of callable stands for.
fn callable_kinds(word: &str) -> Option<&'static [&'static str]> {
    Some(match word.to_ascii_lowercase().as_str() {
        "function" | "func" | "method" => &["function", "method"],
        "macro" => &["macro"],
        _ => return None,
    })
}

/// Canonical parts of a name (`load_dotenv` → `load`, `dot`, `env`; `AppContext` → `app`, `ctx`).
pub(crate) fn name_parts(name: &str) -> Vec<String> {
    let toks = tokenize(name);
    let mut parts: Vec<String> = Vec::new();
    // The tokenizer puts a word's joined form first when it has several parts: skip it.
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        let joined = toks
            .get(i + 1)
            .is_some_and(|n| n.position == t.position && n.offset_from == t.offset_from);
        if !joined {
            let c = terms::canon(&t.text);
            if !parts.contains(&c) {
                parts.push(c);
            }
        }
        i += 1;
    }
    parts
}

/// Whether a word of a question is a path or a file name: it has a `/` between names, or ends
/// in a known extension (`helpers.py`, `src/lib.rs`).
fn looks_like_path(w: &str) -> bool {
    const EXT: &[&str] = &[
        "rs", "py", "js", "mjs", "cjs", "ts", "tsx", "jsx", "go", "java", "c", "h", "cc", "cpp", "hpp", "md", "rst",
        "txt", "toml", "json", "yaml", "yml", "html", "rb", "sh", "kt", "swift", "cs", "php", "lua",
    ];
    let ext = w
        .rsplit_once('.')
        .map(|(stem, e)| !stem.is_empty() && EXT.contains(&e))
        .unwrap_or(false);
    let slashed = w.contains('/') && w.split('/').filter(|p| !p.is_empty()).count() >= 2;
    w.len() >= 3 && (ext || slashed) && !w.contains("://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_that_ask_whether_the_code_does_something() {
        for q in [
            "How do I read a varint from a `Buf`?",
            "Is there a built-in way to compute a CRC32 checksum?",
            "Can the library write gzip-compatible output?",
            "Does the router answer HEAD requests?",
            "is it possible to rate-limit clients",
        ] {
            assert!(asks_whether(q), "{q}");
            assert!(Question::new(q).asks_whether, "{q}");
        }
        for q in [
            "Where is the cache flushed?",
            "How does the parser handle a comma?",
            "What does `url_for` do?",
            "How is a dotenv file loaded?",
            "Isthere",
            "",
        ] {
            assert!(!asks_whether(q), "{q}");
        }
    }

    #[test]
    fn questions_name_code_and_words() {
        let q = Question::new("Where is `AppContext.push` called, and what does url_for do?");
        assert!(q.code_keys.contains(&"appcontext.push".to_string()), "{q:?}");
        assert!(q.code_keys.contains(&"push".to_string()));
        assert!(q.code_keys.contains(&"urlfor".to_string()));
        // As written: the last part of a qualified name, leading underscores kept.
        assert_eq!(q.code_names, ["push", "url_for"]);
        let q = Question::new("What do `shutil._copytree()` and `de::from_str` do?");
        assert_eq!(q.code_names, ["_copytree", "from_str"], "{q:?}");
        let q = Question::new("How is the url for function implemented?");
        assert!(q.word_keys.contains(&"urlfor".to_string()), "{q:?}");
        let q = Question::new("Where is the application context pushed?");
        for t in ["app", "ctx", "push"] {
            assert!(q.content.contains(&t.to_string()), "{q:?}");
        }
        assert!(q.code_keys.is_empty());
    }

    #[test]
    fn types_named_in_prose_beside_their_kind() {
        let q = Question::new("What does the Decor struct hold, and what is class Parameter for?");
        let keys: Vec<&str> = q.typed.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["decor", "parameter"], "{q:?}");
        assert!(q.typed[0].1.contains(&"struct"));
        // The question's first word, lowercase words and kind words are no names.
        let q = Question::new("Struct fields: which struct holds the value, and what is the type Struct?");
        assert!(q.typed.is_empty(), "{q:?}");
        // A callable is named in lowercase before its kind; a stop word or kind word is not.
        let q = Question::new("How does the json macro call the parse_str function and the method function?");
        let keys: Vec<&str> = q.typed.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["json", "parsestr"], "{q:?}");
        assert_eq!(q.typed[0].1, ["macro"]);
        assert!(q.typed[1].1.contains(&"function"));
        // A lowercase word after its kind, or before a type's kind, names nothing.
        let q = Question::new("Which function parse does the value struct call?");
        assert!(q.typed.is_empty(), "{q:?}");
    }

    #[test]
    fn names_split_into_canonical_parts() {
        assert_eq!(name_parts("load_dotenv"), ["load", "dot", "env"]);
        assert_eq!(name_parts("AppContext"), ["app", "ctx"]);
        assert_eq!(name_parts("handle_user_exception"), ["handl", "user", "exc"]);
    }

    #[test]
    fn questions_name_paths() {
        let q = Question::new("What does src/reader.rs do, and helpers.py? e.g. not 3.5 or a.b");
        assert_eq!(q.paths, ["src/reader.rs", "helpers.py"]);
    }

    #[test]
    fn initials_of_phrases_stand_for_their_words() {
        let q = Question::new("How is a byte order mark skipped, and how does time to live expire entries?");
        assert!(q.related_all.contains("bom"), "{q:?}");
        assert!(q.related_all.contains("ttl"), "{q:?}");
        // Joined by "on" or by two short words, a phrase makes no acronym (`cod`, `rotp`).
        let q = Question::new("How are responses cached on disk between runs of the program?");
        for t in ["cod", "rcod", "codb", "rotp"] {
            assert!(!q.related_all.contains(t), "{t}: {q:?}");
        }
    }
}
