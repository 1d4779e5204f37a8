//! Definitions, references and retrieval units of a source file or document.
//!
//! [`extract`] finds the definitions of a file with tree-sitter where a grammar is
//! bundled ([`Lang`]), with headings for documents, and with line patterns otherwise
//! or as a fallback (file too big, minified, parse timed out, parser panicked).
//! [`units`] then tiles the text into retrieval units along those definitions.

#![deny(missing_docs)]

mod code;
mod docs;
mod patterns;
mod recover;
mod units;

use std::time::Duration;

pub use units::{Unit, units};

/// A definition found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// The name as written, e.g. `url_for`; for a section, the heading text.
    pub name: String,
    /// What kind of definition this is.
    pub kind: SymbolKind,
    /// Qualified name of the innermost enclosing definition joined by `.`
    /// (e.g. `AppContext`, `outer.Inner`); `None` at top level.
    /// For a section, the enclosing section's title.
    pub scope: Option<String>,
    /// 1-based first line of the whole definition.
    pub line_start: u32,
    /// 1-based last line of the definition, inclusive.
    pub line_end: u32,
    /// 1-based line of the name itself.
    pub name_line: u32,
    /// Byte offset of the start of the definition (a char boundary).
    pub byte_start: usize,
    /// Byte offset just past the end of the definition (a char boundary).
    pub byte_end: usize,
}

impl Symbol {
    /// `scope.name`, or the name at top level (`AppContext.push`).
    pub fn qualified_name(&self) -> String {
        match &self.scope {
            Some(s) => format!("{s}.{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The kind of a definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SymbolKind {
    /// A free function.
    Function,
    /// A function inside a class, impl, trait or interface.
    Method,
    /// A class (or an object / record declared like a class).
    Class,
    /// A struct or union.
    Struct,
    /// An enumeration.
    Enum,
    /// A trait, interface or protocol.
    Interface,
    /// A type alias or typedef.
    Type,
    /// A module, namespace or package.
    Module,
    /// A constant.
    Constant,
    /// A variable.
    Variable,
    /// A field of a type.
    Field,
    /// A macro.
    Macro,
    /// A Rust `impl` block; its name is the implementing type.
    Impl,
    /// A heading of a document.
    Section,
    /// Anything else.
    Other,
}

impl SymbolKind {
    /// The lowercase name of the kind, e.g. `"function"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SymbolKind::Function => "function",
            SymbolKind::Method => "method",
            SymbolKind::Class => "class",
            SymbolKind::Struct => "struct",
            SymbolKind::Enum => "enum",
            SymbolKind::Interface => "interface",
            SymbolKind::Type => "type",
            SymbolKind::Module => "module",
            SymbolKind::Constant => "constant",
            SymbolKind::Variable => "variable",
            SymbolKind::Field => "field",
            SymbolKind::Macro => "macro",
            SymbolKind::Impl => "impl",
            SymbolKind::Section => "section",
            SymbolKind::Other => "other",
        }
    }

    /// Whether definitions of this kind hold methods (functions inside become methods).
    fn holds_methods(self) -> bool {
        matches!(
            self,
            SymbolKind::Class | SymbolKind::Struct | SymbolKind::Enum | SymbolKind::Interface | SymbolKind::Impl
        )
    }
}

/// A use of a name (a call, a type use, …) found by a tags query.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// The name used.
    pub name: String,
    /// 1-based line of the use.
    pub line: u32,
}

/// A declaration without a body that a comment describes: a C/C++ prototype or in-class
/// method declaration (`// Return the level at which we should place …` above
/// `int PickLevelForMemTableOutput(…);` in a header). Its definition is often in another file,
/// without those words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declaration {
    /// The qualified name, scopes joined by `.` (`leveldb.Version.PickLevelForMemTableOutput`),
    /// as the definition's would be.
    pub name: String,
    /// 1-based line of the name.
    pub line: u32,
    /// The comment above the declaration and beside it, markers stripped ([`comments`]).
    pub comment: String,
}

/// Definitions and references of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSymbols {
    /// Definitions sorted by `byte_start`, longer first on ties.
    pub definitions: Vec<Symbol>,
    /// References sorted by line, one per (name, line).
    pub references: Vec<Reference>,
    /// Declarations without bodies that have a comment (C and C++), by line.
    pub declarations: Vec<Declaration>,
    /// How the definitions were extracted.
    pub method: Method,
    /// Why a fallback was used, if one was.
    pub note: Option<String>,
}

/// How definitions were extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// A tree-sitter grammar and queries.
    TreeSitter(Lang),
    /// Document headings (Markdown, reStructuredText, AsciiDoc).
    Headings,
    /// Line patterns of definer keywords.
    Patterns,
    /// Nothing to extract (empty text).
    None,
}

/// A language with a bundled tree-sitter grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    /// Rust.
    Rust,
    /// Python.
    Python,
    /// JavaScript (with JSX).
    JavaScript,
    /// TypeScript.
    TypeScript,
    /// TypeScript with JSX.
    Tsx,
    /// Go.
    Go,
    /// Java.
    Java,
    /// C.
    C,
    /// C++.
    Cpp,
}

impl Lang {
    /// The lowercase name of the language, e.g. `"rust"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::JavaScript => "javascript",
            Lang::TypeScript => "typescript",
            Lang::Tsx => "tsx",
            Lang::Go => "go",
            Lang::Java => "java",
            Lang::C => "c",
            Lang::Cpp => "cpp",
        }
    }
}

/// Limits of [`extract`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Longest time parsing, and then querying, may take (default 2 s).
    pub time_cap: Duration,
    /// Files bigger than this use the line-pattern fallback (default 1 MiB).
    pub max_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            time_cap: Duration::from_secs(2),
            max_bytes: 1 << 20,
        }
    }
}

fn extension(path: &str) -> Option<String> {
    let file = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let (_, ext) = file.rsplit_once('.')?;
    Some(ext.to_ascii_lowercase())
}

/// The language of a path by its extension (.rs .py .pyi .js .mjs .cjs .jsx .ts .mts
/// .cts .tsx .go .java .c .h .cc .cpp .cxx .hpp .hh .hxx), `None` otherwise.
pub fn lang_of(path: &str) -> Option<Lang> {
    Some(match extension(path)?.as_str() {
        "rs" => Lang::Rust,
        "py" | "pyi" => Lang::Python,
        "js" | "mjs" | "cjs" | "jsx" => Lang::JavaScript,
        "ts" | "mts" | "cts" => Lang::TypeScript,
        "tsx" => Lang::Tsx,
        "go" => Lang::Go,
        "java" => Lang::Java,
        "c" | "h" => Lang::C,
        "cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" => Lang::Cpp,
        _ => return None,
    })
}

/// Extract definitions and references. `kind` is the document kind: `"code"`,
/// `"book"` or `"web"`.
///
/// Code with a grammar ([`lang_of`]) is parsed with tree-sitter unless it is over
/// `opts.max_bytes`, looks minified, times out or panics the parser: then line
/// patterns are used and `note` says why. Documents (Markdown, reStructuredText,
/// AsciiDoc, and every `"book"` or `"web"` text) give their headings as sections.
/// Never panics.
pub fn extract(path: &str, kind: &str, text: &str, opts: &Options) -> FileSymbols {
    if text.is_empty() {
        return FileSymbols {
            definitions: Vec::new(),
            references: Vec::new(),
            declarations: Vec::new(),
            method: Method::None,
            note: None,
        };
    }
    let ext = extension(path).unwrap_or_default();
    let doc = match ext.as_str() {
        "md" | "markdown" | "mdx" => Some(docs::Style::Markdown),
        "rst" => Some(docs::Style::Rst),
        "adoc" | "asciidoc" => Some(docs::Style::AsciiDoc),
        _ if kind == "book" || kind == "web" => Some(docs::Style::Markdown),
        _ => None,
    };
    if let Some(style) = doc {
        return FileSymbols {
            definitions: docs::headings(text, style),
            references: Vec::new(),
            declarations: Vec::new(),
            method: Method::Headings,
            note: None,
        };
    }
    let mut note = None;
    if let Some(mut lang) = lang_of(path) {
        if lang == Lang::C && ext == "h" && code::looks_like_cpp(text) {
            lang = Lang::Cpp;
        }
        if text.len() > opts.max_bytes {
            note = Some(format!(
                "file over {} ({} bytes)",
                human_bytes(opts.max_bytes),
                text.len()
            ));
        } else if let Some(why) = minified(text) {
            note = Some(why);
        } else {
            match code::extract(lang, text, opts.time_cap, &module_name(path)) {
                Ok((definitions, references, declarations)) => {
                    return FileSymbols {
                        definitions,
                        references,
                        declarations,
                        method: Method::TreeSitter(lang),
                        note: None,
                    };
                }
                Err(why) => note = Some(why),
            }
        }
    }
    FileSymbols {
        definitions: patterns::definitions(text),
        references: Vec::new(),
        declarations: Vec::new(),
        method: Method::Patterns,
        note,
    }
}

/// The name a file's module is imported by: its stem, or its folder's name for an `index` file
/// (`lib/helpers/parseHeaders.js` → `parseHeaders`, `lib/defaults/index.js` →
/// `defaults`); empty when there is none.
fn module_name(path: &str) -> String {
    let mut parts = path.rsplit(['/', '\\']);
    let file = parts.next().unwrap_or("");
    let stem = file.split('.').next().unwrap_or("");
    let name = if stem == "index" {
        parts.next().unwrap_or("")
    } else {
        stem
    };
    if name
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == '-')
    {
        name.to_string()
    } else {
        String::new()
    }
}

fn human_bytes(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// Why the text looks minified or generated: a line over 1000 bytes in the first
/// 64 KiB, or an average line over 300 bytes.
fn minified(text: &str) -> Option<String> {
    let head = &text.as_bytes()[..text.len().min(64 << 10)];
    if head.split(|&b| b == b'\n').any(|l| l.len() > 1000) {
        return Some("lines over 1000 bytes (minified)".to_string());
    }
    let lines = text.as_bytes().iter().filter(|&&b| b == b'\n').count() + 1;
    if text.len() / lines > 300 {
        return Some("average line over 300 bytes (minified)".to_string());
    }
    None
}

/// Byte offsets of line starts, with a final entry `text.len()` (no empty last line).
pub(crate) struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub(crate) fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' && i + 1 < text.len() {
                starts.push(i + 1);
            }
        }
        if text.is_empty() {
            starts.clear();
        }
        starts.push(text.len());
        Lines { starts }
    }

    /// Number of lines.
    pub(crate) fn count(&self) -> usize {
        self.starts.len() - 1
    }

    /// Byte range of 0-based line `i`, including its newline.
    pub(crate) fn range(&self, i: usize) -> (usize, usize) {
        (self.starts[i], self.starts[i + 1])
    }

    /// 0-based line holding byte `b`.
    pub(crate) fn line_of(&self, b: usize) -> usize {
        self.starts
            .partition_point(|&s| s <= b)
            .saturating_sub(1)
            .min(self.count().saturating_sub(1))
    }
}

/// A definition before sorting and scoping.
pub(crate) struct Raw {
    pub(crate) sym: Symbol,
    /// A qualifier written with the name (Go receiver, C++ `Foo::bar`), joined by `.`.
    pub(crate) qualifier: Option<String>,
}

/// Sort definitions and give each the qualified name of its innermost enclosing
/// definition as scope; functions directly inside class-like definitions become methods.
pub(crate) fn finish(mut raw: Vec<Raw>) -> Vec<Symbol> {
    raw.sort_by(|a, b| {
        (a.sym.byte_start, std::cmp::Reverse(a.sym.byte_end))
            .cmp(&(b.sym.byte_start, std::cmp::Reverse(b.sym.byte_end)))
    });
    // Stack of (byte_start, byte_end, qualified name, kind).
    let mut stack: Vec<(usize, usize, String, SymbolKind)> = Vec::new();
    let mut out = Vec::with_capacity(raw.len());
    for Raw { mut sym, qualifier } in raw {
        while let Some(&(s, e, _, _)) = stack.last() {
            let strictly = s <= sym.byte_start && sym.byte_end <= e && (s, e) != (sym.byte_start, sym.byte_end);
            if strictly {
                break;
            }
            stack.pop();
        }
        let parent = stack.last();
        // C's `typedef struct Foo { … } Foo;`: the struct is not a member of its own typedef.
        let scope_of = |p: &(usize, usize, String, SymbolKind)| {
            if p.3 == SymbolKind::Type && p.2.rsplit('.').next() == Some(sym.name.as_str()) {
                p.2.rsplit_once('.').map(|(s, _)| s.to_string())
            } else {
                Some(p.2.clone())
            }
        };
        let mut scope = parent.and_then(scope_of);
        if let Some(q) = qualifier {
            scope = Some(match scope {
                Some(s) => format!("{s}.{q}"),
                None => q,
            });
            if sym.kind == SymbolKind::Function {
                sym.kind = SymbolKind::Method;
            }
        }
        if sym.kind == SymbolKind::Function && parent.is_some_and(|p| p.3.holds_methods()) {
            sym.kind = SymbolKind::Method;
        }
        sym.scope = scope;
        let qual = sym.qualified_name();
        stack.push((sym.byte_start, sym.byte_end, qual, sym.kind));
        out.push(sym);
    }
    out
}

#[doc(hidden)]
pub use code::queries_compile;

/// The prose of a piece of source: its comment lines and docstrings, markers stripped (`//`,
/// `///`, `#`, `/*`, `*`, `--`, and text between `"""`/`'''`), one line each. Questions are
/// written in words, and this is where code says in words what it does.
pub fn comments(text: &str) -> String {
    let mut out = String::new();
    let mut in_doc: Option<&str> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(q) = in_doc {
            if let Some(i) = t.find(q) {
                push_line(&mut out, &t[..i]);
                in_doc = None;
            } else {
                push_line(&mut out, t);
            }
            continue;
        }
        let mut opened = false;
        for q in ["\"\"\"", "'''"] {
            if let Some(i) = t.find(q) {
                let rest = &t[i + 3..];
                match rest.find(q) {
                    Some(j) => push_line(&mut out, &rest[..j]),
                    None => {
                        push_line(&mut out, rest);
                        in_doc = Some(q);
                    }
                }
                opened = true;
                break;
            }
        }
        if opened {
            continue;
        }
        let comment = ["///", "//!", "//", "/**", "/*", "*/", "* ", "#", "--", ";;"]
            .iter()
            .find_map(|m| t.strip_prefix(m))
            .or_else(|| (t == "*").then_some(""));
        if let Some(c) = comment {
            if !t.starts_with("#[") && !t.starts_with("#!") && !t.starts_with("#include") {
                push_line(&mut out, c.trim_start_matches(['/', '*', '!']).trim_end_matches("*/"));
            }
        } else if let Some(i) = t.find("//").or_else(|| t.find(" # ")) {
            // A trailing comment.
            push_line(&mut out, &t[i..]);
        }
    }
    out
}

fn push_line(out: &mut String, s: &str) {
    let s = s.trim();
    if !s.is_empty() {
        out.push_str(s);
        out.push('\n');
    }
}

#[cfg(test)]
mod comment_tests {
    #[test]
    fn comments_are_the_prose_of_code() {
        let py = "def f(x):\n    \"\"\"Add one.\n\n    Returns x + 1.\n    \"\"\"\n    return x + 1  # the answer\n";
        assert_eq!(super::comments(py), "Add one.\nReturns x + 1.\n# the answer\n");
        let rs = "/// Parse a key.\n#[inline]\nfn key() {} // trailing\n/* block\n * more */\n";
        assert_eq!(super::comments(rs), "Parse a key.\n// trailing\nblock\nmore\n");
        assert_eq!(super::comments("x = 1\n"), "");
    }
}
