//! The RWKV World tokenizer: greedy longest match over a byte vocabulary.
//!
//! The vocabulary file (`rwkv_vocab_v20230424.txt`, from the official `rwkv` package) has one
//! token per line, `ID REPR LEN`, where `REPR` is a Python `str` or `bytes` literal and `LEN` the
//! token's length in bytes (a `str` is UTF-8 encoded). Encoding walks a byte trie and, at each
//! position, takes the longest vocabulary entry that is a prefix of the remaining bytes — the
//! official `TRIE_TOKENIZER`. Every single byte is in the vocabulary, so encoding never fails.
//! Id 0 is the end-of-text token and has no bytes.

use std::fmt;
use std::sync::OnceLock;

use super::Tokenizer;
use crate::error::{Error, Result};

/// The vocabulary shipped with RWKV World models.
static EMBEDDED_VOCAB: &str = include_str!("../vocab/rwkv_vocab_v20230424.txt");

/// The vocabulary size RWKV World models are padded to.
const WORLD_VOCAB_SIZE: usize = 65536;

/// Nodes with more children than this get a 256-entry lookup table instead of a scanned list.
const DENSE_MIN_CHILDREN: usize = 8;

/// Marks "no dense table" in [`Node::dense`].
const NO_DENSE: u32 = u32::MAX;

/// The RWKV World tokenizer.
///
/// Build it once: [`WorldTokenizer::embedded`] gives a shared instance of the vocabulary that
/// ships with the crate; [`WorldTokenizer::from_vocab_text`] reads another file in the same
/// format.
#[derive(Clone)]
pub struct WorldTokenizer {
    /// Bytes of token `id` are `data[offsets[id]..offsets[id + 1]]` (empty: no such token).
    offsets: Vec<u32>,
    data: Vec<u8>,
    trie: Trie,
    vocab_size: usize,
}

impl fmt::Debug for WorldTokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorldTokenizer")
            .field("tokens", &self.trie.token_count)
            .field("vocab_size", &self.vocab_size)
            .finish_non_exhaustive()
    }
}

impl WorldTokenizer {
    /// Parses the embedded vocabulary (`rwkv_vocab_v20230424.txt`).
    ///
    /// Each call parses the file again (a few milliseconds); prefer [`WorldTokenizer::embedded`].
    pub fn new() -> Result<Self> {
        Self::from_vocab_text(EMBEDDED_VOCAB)
    }

    /// A shared instance of the embedded vocabulary, parsed on first use.
    pub fn embedded() -> &'static WorldTokenizer {
        static SHARED: OnceLock<WorldTokenizer> = OnceLock::new();
        // The embedded vocabulary is part of the crate and covered by tests, so parsing it cannot
        // fail at run time.
        SHARED.get_or_init(|| Self::new().expect("the embedded World vocabulary is valid"))
    }

    /// Parses a vocabulary in the `rwkv_vocab_v20230424.txt` format.
    ///
    /// Ids must be unique and non-zero (0 is reserved for end-of-text), byte strings must be
    /// non-empty and unique, each `LEN` must match, and all 256 single bytes must be present so
    /// that any input can be encoded. Ids may have gaps; an id without a line has no bytes.
    pub fn from_vocab_text(text: &str) -> Result<Self> {
        let mut entries: Vec<(u32, Vec<u8>)> = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let lineno = n + 1;
            let (id, bytes) = parse_line(line).map_err(|r| bad(format!("line {lineno}: {r}")))?;
            entries.push((id, bytes));
        }
        if entries.is_empty() {
            return Err(bad("the vocabulary is empty".into()));
        }

        let max_id = entries.iter().map(|e| e.0).max().unwrap_or(0) as usize;
        let mut owner = vec![0u32; max_id + 1];
        let mut lens = vec![0u32; max_id + 1];
        for (id, bytes) in &entries {
            let slot = &mut owner[*id as usize];
            if *slot != 0 {
                return Err(bad(format!("token id {id} appears twice")));
            }
            *slot = *id;
            lens[*id as usize] = bytes.len() as u32;
        }
        let total: usize = entries.iter().map(|e| e.1.len()).sum();
        if total > u32::MAX as usize {
            return Err(bad("the vocabulary is too large".into()));
        }
        let mut offsets = Vec::with_capacity(max_id + 2);
        let mut acc = 0u32;
        offsets.push(0);
        for len in &lens {
            acc += len;
            offsets.push(acc);
        }
        let mut data = vec![0u8; total];
        for (id, bytes) in &entries {
            let start = offsets[*id as usize] as usize;
            data[start..start + bytes.len()].copy_from_slice(bytes);
        }

        let trie = Trie::build(&entries)?;
        for b in 0..=255u8 {
            if trie.single_byte[b as usize] == 0 {
                return Err(bad(format!(
                    "the single byte 0x{b:02x} is not a token, so some text could not be encoded"
                )));
            }
        }
        Ok(WorldTokenizer {
            offsets,
            data,
            trie,
            vocab_size: WORLD_VOCAB_SIZE.max(max_id + 1),
        })
    }

    /// Number of tokens with bytes (65529 for the embedded vocabulary).
    pub fn token_count(&self) -> usize {
        self.trie.token_count
    }
}

impl Tokenizer for WorldTokenizer {
    fn id(&self) -> &str {
        "world"
    }

    /// 65536 (the padded size of RWKV World models), or more if a custom vocabulary has larger
    /// ids.
    fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    fn encode_bytes(&self, bytes: &[u8]) -> Vec<u32> {
        let mut out = Vec::with_capacity(bytes.len() / 3 + 1);
        let trie = &self.trie;
        let mut pos = 0;
        while pos < bytes.len() {
            // The first byte always matches: every single byte is a token (checked when built).
            let mut node = trie.root_child(bytes[pos]);
            let mut best_token = trie.nodes[node as usize].token;
            let mut best_end = pos + 1;
            let mut i = pos + 1;
            while i < bytes.len() {
                match trie.child(node, bytes[i]) {
                    Some(next) => {
                        node = next;
                        i += 1;
                        let t = trie.nodes[node as usize].token;
                        if t != 0 {
                            best_token = t;
                            best_end = i;
                        }
                    }
                    None => break,
                }
            }
            out.push(best_token);
            pos = best_end;
        }
        out
    }

    fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        let i = id as usize;
        if i + 1 >= self.offsets.len() {
            return None;
        }
        let (a, b) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        if a == b { None } else { Some(&self.data[a..b]) }
    }
}

fn bad(reason: String) -> Error {
    Error::Tokenizer {
        name: "world".into(),
        reason,
    }
}

/// One trie node, flattened.
#[derive(Clone, Copy, Debug)]
struct Node {
    /// Token ending here, 0 if none.
    token: u32,
    /// First child in `edge_byte` / `edge_node`.
    start: u32,
    /// Number of children.
    len: u32,
    /// Index of this node's 256-entry table in `dense`, or [`NO_DENSE`].
    dense: u32,
}

/// A byte trie in flat arrays: children of a node are contiguous and sorted by byte; nodes with
/// many children also have a direct 256-entry table (0 = no child; the root is never a child).
#[derive(Clone, Debug)]
struct Trie {
    nodes: Vec<Node>,
    edge_byte: Vec<u8>,
    edge_node: Vec<u32>,
    dense: Vec<u32>,
    /// Token id of each single byte (0 if absent).
    single_byte: [u32; 256],
    token_count: usize,
}

impl Trie {
    fn build(entries: &[(u32, Vec<u8>)]) -> Result<Trie> {
        struct BuildNode {
            token: u32,
            children: Vec<(u8, u32)>,
        }
        let mut nodes = vec![BuildNode {
            token: 0,
            children: Vec::new(),
        }];
        for (id, bytes) in entries {
            let mut cur = 0usize;
            for &b in bytes {
                let found = nodes[cur].children.iter().find(|c| c.0 == b).map(|c| c.1);
                cur = match found {
                    Some(n) => n as usize,
                    None => {
                        let n = nodes.len();
                        nodes.push(BuildNode {
                            token: 0,
                            children: Vec::new(),
                        });
                        nodes[cur].children.push((b, n as u32));
                        n
                    }
                };
            }
            let prev = nodes[cur].token;
            if prev != 0 {
                return Err(bad(format!("tokens {prev} and {id} have the same bytes {bytes:?}")));
            }
            nodes[cur].token = *id;
        }

        let mut flat = Vec::with_capacity(nodes.len());
        let mut edge_byte = Vec::with_capacity(nodes.len());
        let mut edge_node = Vec::with_capacity(nodes.len());
        let mut dense = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            n.children.sort_unstable_by_key(|c| c.0);
            let start = edge_byte.len() as u32;
            let mut d = NO_DENSE;
            if i == 0 || n.children.len() > DENSE_MIN_CHILDREN {
                d = (dense.len() / 256) as u32;
                let base = dense.len();
                dense.resize(base + 256, 0u32);
                for &(b, c) in &n.children {
                    dense[base + b as usize] = c;
                }
            }
            for &(b, c) in &n.children {
                edge_byte.push(b);
                edge_node.push(c);
            }
            flat.push(Node {
                token: n.token,
                start,
                len: n.children.len() as u32,
                dense: d,
            });
        }
        let mut single_byte = [0u32; 256];
        for &(b, c) in &nodes[0].children {
            single_byte[b as usize] = nodes[c as usize].token;
        }
        Ok(Trie {
            nodes: flat,
            edge_byte,
            edge_node,
            dense,
            single_byte,
            token_count: entries.len(),
        })
    }

    /// The root's child for `b` (the root's table is the first dense table).
    #[inline]
    fn root_child(&self, b: u8) -> u32 {
        self.dense[b as usize]
    }

    #[inline]
    fn child(&self, node: u32, b: u8) -> Option<u32> {
        let n = &self.nodes[node as usize];
        if n.dense != NO_DENSE {
            let c = self.dense[n.dense as usize * 256 + b as usize];
            return if c == 0 { None } else { Some(c) };
        }
        let (s, e) = (n.start as usize, (n.start + n.len) as usize);
        self.edge_byte[s..e]
            .iter()
            .position(|&x| x == b)
            .map(|k| self.edge_node[s + k])
    }
}

/// Parses `ID REPR LEN` into the id and the token's bytes.
fn parse_line(line: &str) -> std::result::Result<(u32, Vec<u8>), String> {
    let first = line.find(' ').ok_or("expected `ID REPR LEN`")?;
    let last = line.rfind(' ').ok_or("expected `ID REPR LEN`")?;
    if last <= first {
        return Err("expected `ID REPR LEN`".into());
    }
    let id_text = &line[..first];
    let id: u32 = id_text.parse().map_err(|_| format!("bad token id `{id_text}`"))?;
    if id == 0 {
        return Err("token id 0 is reserved for end-of-text".into());
    }
    let len_text = line[last + 1..].trim();
    let len: usize = len_text.parse().map_err(|_| format!("bad byte length `{len_text}`"))?;
    let repr = line[first + 1..last].trim();
    let bytes = parse_py_literal(repr)?;
    if bytes.is_empty() {
        return Err(format!("token {id} has no bytes"));
    }
    if bytes.len() != len {
        return Err(format!("token {id} has {} bytes but the line says {len}", bytes.len()));
    }
    Ok((id, bytes))
}

/// Parses a Python `str` literal (returned UTF-8 encoded) or `bytes` literal.
fn parse_py_literal(repr: &str) -> std::result::Result<Vec<u8>, String> {
    let (is_bytes, body) = match repr.as_bytes().first() {
        Some(b'b' | b'B') => (true, &repr[1..]),
        _ => (false, repr),
    };
    let quote = match body.chars().next() {
        Some(q @ ('\'' | '"')) => q,
        _ => return Err(format!("not a Python string literal: {repr}")),
    };
    let mut chars = body[1..].chars();
    let mut out = Vec::new();
    let mut closed = false;
    while let Some(c) = chars.next() {
        if c == quote {
            closed = true;
            break;
        }
        if c != '\\' {
            if is_bytes && !c.is_ascii() {
                return Err(format!("non-ASCII character in a bytes literal: {repr}"));
            }
            push_char(&mut out, c);
            continue;
        }
        let e = chars.next().ok_or_else(|| format!("unterminated literal: {repr}"))?;
        match e {
            '\\' | '\'' | '"' => out.push(e as u8),
            'a' => out.push(0x07),
            'b' => out.push(0x08),
            'f' => out.push(0x0c),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'v' => out.push(0x0b),
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.clone().next().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                push_code(&mut out, v, is_bytes, repr)?;
            }
            'x' => {
                let v = hex_digits(&mut chars, 2, repr)?;
                push_code(&mut out, v, is_bytes, repr)?;
            }
            'u' if !is_bytes => {
                let v = hex_digits(&mut chars, 4, repr)?;
                push_code(&mut out, v, false, repr)?;
            }
            'U' if !is_bytes => {
                let v = hex_digits(&mut chars, 8, repr)?;
                push_code(&mut out, v, false, repr)?;
            }
            'N' if !is_bytes => {
                return Err(format!("\\N{{...}} escapes are not supported: {repr}"));
            }
            // Python keeps unknown escapes as written (backslash included).
            other => {
                if is_bytes && !other.is_ascii() {
                    return Err(format!("non-ASCII character in a bytes literal: {repr}"));
                }
                out.push(b'\\');
                push_char(&mut out, other);
            }
        }
    }
    if !closed {
        return Err(format!("unterminated literal: {repr}"));
    }
    if !chars.as_str().is_empty() {
        return Err(format!("unexpected text after the literal: {repr}"));
    }
    Ok(out)
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// Pushes an escaped value: a byte in a bytes literal, a code point (UTF-8 encoded) in a str.
fn push_code(out: &mut Vec<u8>, v: u32, is_bytes: bool, repr: &str) -> std::result::Result<(), String> {
    if is_bytes {
        let b = u8::try_from(v).map_err(|_| format!("escape value {v} out of byte range: {repr}"))?;
        out.push(b);
    } else {
        let c = char::from_u32(v).ok_or_else(|| format!("escape U+{v:04X} is not a character: {repr}"))?;
        push_char(out, c);
    }
    Ok(())
}

fn hex_digits(chars: &mut std::str::Chars<'_>, n: usize, repr: &str) -> std::result::Result<u32, String> {
    let mut v = 0u32;
    for _ in 0..n {
        let d = chars
            .next()
            .and_then(|c| c.to_digit(16))
            .ok_or_else(|| format!("bad hex escape: {repr}"))?;
        v = v * 16 + d;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_vocab_parses() {
        let t = WorldTokenizer::embedded();
        assert_eq!(t.token_count(), 65529);
        assert_eq!(t.vocab_size(), 65536);
        assert_eq!(t.id(), "world");
        assert_eq!(t.token_bytes(0), None);
        assert_eq!(t.token_bytes(1), Some(&[0u8][..]));
        assert_eq!(t.token_bytes(256), Some(&[255u8][..]));
        assert_eq!(t.token_bytes(65529).map(<[u8]>::len), Some(128));
        assert_eq!(t.token_bytes(65530), None);
        assert_eq!(t.token_bytes(u32::MAX), None);
        for b in 0..=255u8 {
            assert_eq!(t.encode_bytes(&[b]), vec![b as u32 + 1]);
        }
    }

    #[test]
    fn python_literals() {
        let p = |s: &str| parse_py_literal(s).unwrap();
        assert_eq!(p(r"'a\nb'"), b"a\nb");
        assert_eq!(p(r#""it's""#), b"it's");
        assert_eq!(p(r"'\''"), b"'");
        assert_eq!(p(r"'\\'"), b"\\");
        assert_eq!(p(r"'\x80'"), "\u{80}".as_bytes());
        assert_eq!(p(r"b'\x80'"), [0x80]);
        assert_eq!(p(r"'\u2002'"), "\u{2002}".as_bytes());
        assert_eq!(p(r"'\U0001F600'"), "😀".as_bytes());
        assert_eq!(p(r"'\0'"), [0]);
        assert_eq!(p(r"'\101'"), b"A");
        assert_eq!(p("'é'"), "é".as_bytes());
        assert_eq!(p(r"'\q'"), b"\\q");
        assert!(parse_py_literal(r"'\ud800'").is_err());
        assert!(parse_py_literal(r"b'\u0041'").is_ok_and(|b| b == b"\\u0041"));
        assert!(parse_py_literal("b'é'").is_err());
        assert!(parse_py_literal("'abc").is_err());
        assert!(parse_py_literal("'a'b").is_err());
        assert!(parse_py_literal("abc").is_err());
        assert!(parse_py_literal(r"'\x4'").is_err());
    }

    fn all_bytes_vocab() -> String {
        let mut s = String::new();
        for b in 0..=255u32 {
            s.push_str(&format!("{} b'\\x{:02x}' 1\n", b + 1, b));
        }
        s
    }

    #[test]
    fn custom_vocab_and_errors() {
        let mut v = all_bytes_vocab();
        v.push_str("300 'ab' 2\n301 'abc d' 5\n");
        let t = WorldTokenizer::from_vocab_text(&v).unwrap();
        assert_eq!(t.encode("abc dab"), vec![301, 300]);
        assert_eq!(t.encode("abc"), vec![300, b'c' as u32 + 1]);
        assert_eq!(t.token_bytes(299), None);
        assert_eq!(t.decode(&[301, 0, 300]), "abc dab");

        let err = |extra: &str| {
            let mut v = all_bytes_vocab();
            v.push_str(extra);
            match WorldTokenizer::from_vocab_text(&v) {
                Err(Error::Tokenizer { name, reason }) => {
                    assert_eq!(name, "world");
                    reason
                }
                other => panic!("expected an error for {extra:?}, got {other:?}"),
            }
        };
        assert!(err("300 'ab' 3\n").contains("line 257"));
        err("1 'zz' 2\n");
        err("0 'zz' 2\n");
        err("300 'a' 1\n");
        err("300 '' 0\n");
        err("300 'ab 2\n");
        err("x 'ab' 2\n");
        err("300 'ab'\n");
        let missing = all_bytes_vocab().replacen("1 b'\\x00' 1\n", "", 1);
        assert!(WorldTokenizer::from_vocab_text(&missing).is_err());
        assert!(WorldTokenizer::from_vocab_text("").is_err());
    }
}
