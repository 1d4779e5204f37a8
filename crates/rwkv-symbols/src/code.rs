//! Tree-sitter extraction: own definition queries per language (tags-style capture
//! names), references from the grammars' bundled tags queries.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tree_sitter::{Language, Node, Parser, Query, QueryCursor, QueryCursorOptions, StreamingIterator};

use crate::{Declaration, Lang, Raw, Reference, Symbol, SymbolKind};

const RUST_DEFS: &str = r#"
(struct_item name: (type_identifier) @name) @definition.struct
(union_item name: (type_identifier) @name) @definition.struct
(enum_item name: (type_identifier) @name) @definition.enum
(type_item name: (type_identifier) @name) @definition.type
(trait_item name: (type_identifier) @name) @definition.interface
(function_item name: (identifier) @name) @definition.function
(function_signature_item name: (identifier) @name) @definition.function
(mod_item name: (identifier) @name) @definition.module
(macro_definition name: (identifier) @name) @definition.macro
(const_item name: (identifier) @name) @definition.constant
(static_item name: (identifier) @name) @definition.variable
(impl_item type: (_) @name) @definition.impl
"#;

const PYTHON_DEFS: &str = r#"
(class_definition name: (identifier) @name) @definition.class
(function_definition name: (identifier) @name) @definition.function
(module (expression_statement (assignment left: (identifier) @name)) @definition.constant)
"#;

const JS_DEFS: &str = r#"
(class_declaration name: (_) @name) @definition.class
(class name: (_) @name) @definition.class
(function_declaration name: (identifier) @name) @definition.function
(generator_function_declaration name: (identifier) @name) @definition.function
(method_definition name: (_) @name) @definition.method
(lexical_declaration (variable_declarator name: (identifier) @name
  value: [(arrow_function) (function_expression) (generator_function)])) @definition.function
(variable_declaration (variable_declarator name: (identifier) @name
  value: [(arrow_function) (function_expression) (generator_function)])) @definition.function
(lexical_declaration (variable_declarator name: (identifier) @name value: (class))) @definition.class
(variable_declaration (variable_declarator name: (identifier) @name value: (class))) @definition.class
(expression_statement (assignment_expression
  left: [(identifier) @name (member_expression property: (property_identifier) @name)]
  right: [(arrow_function) (function_expression) (generator_function)])) @definition.function
(expression_statement (assignment_expression
  left: [(identifier) @name (member_expression property: (property_identifier) @name)]
  right: (class))) @definition.class
(pair key: [(property_identifier) (string)] @name
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.function
(expression_statement (assignment_expression
  left: (member_expression object: (_) @obj property: (property_identifier) @name))
  (#match? @obj "^(module\\.)?exports$")) @definition.variable
(lexical_declaration (variable_declarator name: (identifier) @name)) @definition.constant
(variable_declaration (variable_declarator name: (identifier) @name)) @definition.variable
(export_statement value: [(arrow_function) (function_expression) (generator_function)]
  @definition.function)
(array (function_expression name: (identifier) @name) @definition.function)
(export_statement value: (class !name) @definition.class)
(program (expression_statement (call_expression arguments: (arguments
  (function_expression name: (identifier) @name)))) @definition.function)
(program (expression_statement (call_expression arguments: (arguments
  (string (string_fragment) @name) (function_expression !name)))
  (#match? @name "^[A-Za-z_$][A-Za-z0-9_$]*$")) @definition.function)
"#;

const JS_ONLY_DEFS: &str = r#"
(field_definition property: (property_identifier) @name
  value: [(arrow_function) (function_expression)]) @definition.method
"#;

const TS_DEFS: &str = r#"
(public_field_definition name: (property_identifier) @name
  value: [(arrow_function) (function_expression)]) @definition.method
(abstract_class_declaration name: (type_identifier) @name) @definition.class
(interface_declaration name: (type_identifier) @name) @definition.interface
(type_alias_declaration name: (type_identifier) @name) @definition.type
(enum_declaration name: (identifier) @name) @definition.enum
(internal_module name: (_) @name) @definition.module
(module name: (_) @name) @definition.module
(function_signature name: (identifier) @name) @definition.function
"#;

const GO_DEFS: &str = r#"
(function_declaration name: (identifier) @name) @definition.function
(method_declaration name: (field_identifier) @name) @definition.method
(type_spec name: (type_identifier) @name type: (struct_type)) @definition.struct
(type_spec name: (type_identifier) @name type: (interface_type)) @definition.interface
(type_spec name: (type_identifier) @name) @definition.type
(type_alias name: (type_identifier) @name) @definition.type
(source_file (const_declaration (const_spec name: (identifier) @name) @definition.constant))
(source_file (var_declaration (var_spec name: (identifier) @name) @definition.variable))
"#;

const JAVA_DEFS: &str = r#"
(class_declaration name: (identifier) @name) @definition.class
(record_declaration name: (identifier) @name) @definition.class
(interface_declaration name: (identifier) @name) @definition.interface
(annotation_type_declaration name: (identifier) @name) @definition.interface
(enum_declaration name: (identifier) @name) @definition.enum
(enum_constant name: (identifier) @name body: (class_body)) @definition.class
(method_declaration name: (identifier) @name) @definition.method
(constructor_declaration name: (identifier) @name) @definition.method
"#;

const C_DEFS: &str = r#"
(function_definition) @definition.function
(struct_specifier name: (_) @name body: (_)) @definition.struct
(union_specifier name: (_) @name body: (_)) @definition.struct
(enum_specifier name: (_) @name body: (_)) @definition.enum
(type_definition) @definition.type
(preproc_def name: (identifier) @name) @definition.macro
(preproc_function_def name: (identifier) @name) @definition.macro
(declaration declarator: (init_declarator)) @definition.variable
(declaration declarator: (function_declarator declarator: (identifier) @name)) @declaration
(declaration declarator: (pointer_declarator
  declarator: (function_declarator declarator: (identifier) @name))) @declaration
"#;

const CPP_DEFS: &str = r#"
(class_specifier name: (_) @name body: (_)) @definition.class
(namespace_definition name: (_) @name) @definition.module
(alias_declaration name: (type_identifier) @name) @definition.type
(field_declaration declarator: (function_declarator declarator: (field_identifier) @name)) @declaration
(field_declaration declarator: (pointer_declarator
  declarator: (function_declarator declarator: (field_identifier) @name))) @declaration
(field_declaration declarator: (reference_declarator
  (function_declarator declarator: (field_identifier) @name))) @declaration
(declaration declarator: (reference_declarator
  (function_declarator declarator: (identifier) @name))) @declaration
"#;

const RUST_REFS: &str = r#"
(call_expression function: (scoped_identifier name: (identifier) @name)) @reference.call
(call_expression function: (generic_function function: [
  (identifier) @name
  (scoped_identifier name: (identifier) @name)
  (field_expression field: (field_identifier) @name)
])) @reference.call
(struct_expression name: (type_identifier) @name) @reference.class
"#;

const C_REFS: &str = r#"
(call_expression function: [
  (identifier) @name
  (field_expression field: (field_identifier) @name)
]) @reference.call
"#;

const CPP_REFS: &str = r#"
(call_expression function: (qualified_identifier name: (identifier) @name)) @reference.call
"#;

struct Queries {
    language: Language,
    defs: Option<Query>,
    refs: Option<Query>,
}

fn language(lang: Lang) -> Language {
    match lang {
        Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
        Lang::Python => tree_sitter_python::LANGUAGE.into(),
        Lang::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
        Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
        Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
        Lang::Go => tree_sitter_go::LANGUAGE.into(),
        Lang::Java => tree_sitter_java::LANGUAGE.into(),
        Lang::C => tree_sitter_c::LANGUAGE.into(),
        Lang::Cpp => tree_sitter_cpp::LANGUAGE.into(),
    }
}

/// Candidate sources of the definition and reference queries, first that compiles wins.
fn sources(lang: Lang) -> (Vec<String>, Vec<String>) {
    let js = tree_sitter_javascript::TAGS_QUERY;
    let ts = tree_sitter_typescript::TAGS_QUERY;
    match lang {
        Lang::Rust => (
            vec![RUST_DEFS.into()],
            vec![
                format!("{}\n{RUST_REFS}", tree_sitter_rust::TAGS_QUERY),
                tree_sitter_rust::TAGS_QUERY.into(),
            ],
        ),
        Lang::Python => (vec![PYTHON_DEFS.into()], vec![tree_sitter_python::TAGS_QUERY.into()]),
        Lang::JavaScript => (
            vec![format!("{JS_DEFS}{JS_ONLY_DEFS}"), JS_DEFS.into()],
            vec![js.into()],
        ),
        Lang::TypeScript | Lang::Tsx => (
            vec![format!("{JS_DEFS}{TS_DEFS}"), JS_DEFS.into()],
            vec![format!("{js}\n{ts}"), ts.into()],
        ),
        Lang::Go => (vec![GO_DEFS.into()], vec![tree_sitter_go::TAGS_QUERY.into()]),
        Lang::Java => (vec![JAVA_DEFS.into()], vec![tree_sitter_java::TAGS_QUERY.into()]),
        Lang::C => (vec![C_DEFS.into()], vec![C_REFS.into()]),
        Lang::Cpp => (
            vec![format!("{C_DEFS}{CPP_DEFS}"), C_DEFS.into()],
            vec![format!("{C_REFS}{CPP_REFS}"), C_REFS.into()],
        ),
    }
}

fn compile(language: &Language, candidates: &[String]) -> Option<Query> {
    candidates.iter().find_map(|src| Query::new(language, src).ok())
}

fn queries(lang: Lang) -> &'static Queries {
    static CELLS: [OnceLock<Queries>; 9] = [const { OnceLock::new() }; 9];
    CELLS[lang as usize].get_or_init(|| {
        let language = language(lang);
        let (defs, refs) = sources(lang);
        let defs = compile(&language, &defs);
        let refs = compile(&language, &refs);
        Queries { language, defs, refs }
    })
}

/// Whether the definition and reference queries of `lang` compile (for tests).
#[doc(hidden)]
pub fn queries_compile(lang: Lang) -> (bool, bool) {
    let q = queries(lang);
    (q.defs.is_some(), q.refs.is_some())
}

/// A `.h` file that is C++ rather than C.
pub(crate) fn looks_like_cpp(text: &str) -> bool {
    text.lines().take(5000).any(|l| {
        let l = l.trim_start();
        l.starts_with("class ")
            || l.starts_with("namespace ")
            || l.starts_with("template <")
            || l.starts_with("template<")
            || l.starts_with("public:")
            || l.starts_with("private:")
    })
}

type Found = (Vec<Symbol>, Vec<Reference>, Vec<Declaration>);

/// Parse and query; `Err` says why the fallback is needed.
pub(crate) fn extract(lang: Lang, text: &str, cap: Duration, default_name: &str) -> Result<Found, String> {
    match catch_unwind(AssertUnwindSafe(|| run(lang, text, cap, default_name))) {
        Ok(r) => r,
        Err(_) => Err("grammar panicked".to_string()),
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}s")
    } else {
        format!("{s:.2}s")
    }
}

/// Most words [`mask_class_macros`] reads after `class` (macros and the name).
const MAX_HEAD_WORDS: usize = 6;
/// Most bytes of a macro's `(…)` it reads.
const MAX_MACRO_ARGS: usize = 256;

/// C++ text with the macros between `class`/`struct`/`union` and the type's name blanked out
/// (`class LEVELDB_EXPORT Cache {`, `class SCOPED_LOCKABLE MutexLock {`, `struct GTEST_API_
/// TestInfo : …`): the grammar does not know them, reads such a class as a function named
/// after the type, and its members are then no definitions at all. A macro here is an
/// all-capitals word, with a parenthesized argument list if it has one, followed by the
/// name and `{`, `:` or `final`. The text keeps its length, lines and byte offsets.
fn mask_class_macros(text: &str) -> std::borrow::Cow<'_, str> {
    let b = text.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let skip_ws = |mut i: usize| {
        while i < b.len() && matches!(b[i], b' ' | b'\t') {
            i += 1;
        }
        i
    };
    let word_end = |mut i: usize| {
        while i < b.len() && ident(b[i]) {
            i += 1;
        }
        i
    };
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for kw in ["class", "struct", "union"] {
        for (at, _) in text.match_indices(kw) {
            let end = at + kw.len();
            if (at > 0 && ident(b[at - 1])) || end >= b.len() || !matches!(b[end], b' ' | b'\t') {
                continue;
            }
            // Words, each maybe with `(…)`, up to what opens the body: the last is the
            // name, every one before it a macro.
            let mut i = skip_ws(end);
            let start = i;
            let mut words: Vec<(usize, bool)> = Vec::new(); // (start, has arguments)
            loop {
                let w_end = word_end(i);
                if w_end == i || b[i].is_ascii_digit() {
                    break;
                }
                let mut j = skip_ws(w_end);
                let mut args = false;
                if j < b.len() && b[j] == b'(' {
                    let Some(close) = b[j..]
                        .iter()
                        .take(MAX_MACRO_ARGS)
                        .position(|&c| c == b')' || c == b'\n')
                    else {
                        break;
                    };
                    if b[j + close] != b')' {
                        break;
                    }
                    args = true;
                    j = skip_ws(j + close + 1);
                }
                words.push((i, args));
                i = j;
                // A head has a few macros at most: this bounds the work per keyword, so text
                // such as `class a class a …` stays linear.
                if words.len() > MAX_HEAD_WORDS
                    || (b[i..].starts_with(b"final") && !b.get(i + 5).is_some_and(|&c| ident(c)))
                {
                    break;
                }
            }
            let opens = i >= b.len()
                || (matches!(b[i], b'{' | b':' | b'\n' | b'\r') && !b[i..].starts_with(b"::"))
                || b[i..].starts_with(b"final");
            let Some(&(name_at, name_args)) = words.last() else {
                continue;
            };
            let is_macro = |at: usize| {
                let w = &b[at..word_end(at)];
                w.len() >= 2
                    && w[0].is_ascii_uppercase()
                    && w.iter()
                        .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
            };
            if opens
                && !name_args
                && (2..=MAX_HEAD_WORDS).contains(&words.len())
                && words[..words.len() - 1].iter().all(|&(at, _)| is_macro(at))
            {
                spans.push((start, name_at));
            }
        }
    }
    if spans.is_empty() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = b.to_vec();
    for (s, e) in spans {
        out[s..e].fill(b' ');
    }
    // Only ASCII bytes were replaced by spaces.
    std::borrow::Cow::Owned(String::from_utf8(out).expect("ASCII replaced by ASCII"))
}

fn run(lang: Lang, text: &str, cap: Duration, default_name: &str) -> Result<Found, String> {
    let masked = if lang == Lang::Cpp {
        mask_class_macros(text)
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    let text: &str = &masked;
    let q = queries(lang);
    let Some(defs_query) = q.defs.as_ref() else {
        return Err(format!("{} definitions query does not compile", lang.as_str()));
    };
    let mut parser = Parser::new();
    parser
        .set_language(&q.language)
        .map_err(|e| format!("grammar not loadable: {e}"))?;
    let started = Instant::now();
    let deadline = started + cap;
    let bytes = text.as_bytes();
    let mut progress = |_: &tree_sitter::ParseState| {
        if Instant::now() > deadline {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let tree = parser
        .parse_with_options(
            &mut |i, _| if i < bytes.len() { &bytes[i..] } else { &[] },
            None,
            Some(tree_sitter::ParseOptions::new().progress_callback(&mut progress)),
        )
        .ok_or_else(|| format!("parse timed out after {}", secs(cap)))?;
    let root = tree.root_node();
    let lines = crate::Lines::new(text);

    // Definitions.
    let deadline = Instant::now() + cap;
    let mut timed_out = false;
    let mut qprogress = |_: &tree_sitter::QueryCursorState| {
        if Instant::now() > deadline {
            timed_out = true;
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let names = defs_query.capture_names();
    let mut cursor = QueryCursor::new();
    // (def node range, name range) -> (pattern index, raw)
    let mut found: Vec<(usize, usize, usize, usize, Raw)> = Vec::new();
    let mut declared: Vec<Declared> = Vec::new();
    {
        let mut matches = cursor.matches_with_options(
            defs_query,
            root,
            bytes,
            QueryCursorOptions::new().progress_callback(&mut qprogress),
        );
        while let Some(m) = matches.next() {
            let mut def: Option<(Node, SymbolKind)> = None;
            let mut name: Option<Node> = None;
            let mut declaration: Option<Node> = None;
            for c in m.captures() {
                let cap = names[c.index as usize];
                if cap == "name" {
                    name = Some(c.node);
                } else if cap == "declaration" {
                    declaration = Some(c.node);
                } else if let Some(k) = cap.strip_prefix("definition.") {
                    def = Some((c.node, kind_of(k)));
                }
            }
            if let (Some(d), Some(n)) = (declaration, name) {
                // A prototype inside a function body is local.
                if !inside_function(d) {
                    declared.push(Declared {
                        byte_start: d.start_byte(),
                        byte_end: d.end_byte(),
                        first_row: d.start_position().row,
                        last_row: d.end_position().row,
                        name: clean_name(node_text(text, n)),
                        name_row: n.start_position().row,
                    });
                }
                continue;
            }
            let Some((node, kind)) = def else { continue };
            // An anonymous default export (`export default (config) => {…}`) is named as its
            // module is imported: by the file's name.
            let anonymous_export = name.is_none()
                && node.child_by_field_name("name").is_none()
                && node.parent().is_some_and(|p| p.kind() == "export_statement");
            let raw = if anonymous_export {
                let export = node.parent().unwrap_or(node);
                (!default_name.is_empty()).then(|| default_export(text, &lines, export, default_name, kind))
            } else {
                let name = name.or_else(|| {
                    // A named function or class after `export default`.
                    node.parent()
                        .filter(|p| p.kind() == "export_statement")
                        .and_then(|_| node.child_by_field_name("name"))
                });
                definition(lang, text, &lines, node, name, kind)
            };
            if let Some(raw) = raw {
                found.push((
                    m.pattern_index,
                    node.start_byte(),
                    node.end_byte(),
                    raw.sym.name_line as usize,
                    raw,
                ));
            }
        }
    }
    if timed_out {
        return Err(format!("definitions query timed out after {}", secs(cap)));
    }
    // One definition per (node, name): the first pattern wins.
    found.sort_by_key(|f| (f.1, f.2, f.4.sym.name.clone(), f.0));
    found.dedup_by(|b, a| (a.1, a.2, &a.4.sym.name) == (b.1, b.2, &b.4.sym.name));
    let mut raw: Vec<Raw> = found.into_iter().map(|f| f.4).collect();
    // C and C++ the grammar could not parse (macros it cannot place, `#if` branches that each
    // open a brace) may have lost functions to an error node: their column-0 heads still show.
    if matches!(lang, Lang::C | Lang::Cpp) && root.has_error() {
        crate::recover::recover_functions(text, &lines, &mut raw);
    }
    let definitions = crate::finish(raw);
    let declarations = described(text, &lines, &definitions, declared);

    // References.
    let mut references = Vec::new();
    if let Some(refs_query) = q.refs.as_ref() {
        let deadline = Instant::now() + cap;
        let mut timed_out = false;
        let mut rprogress = |_: &tree_sitter::QueryCursorState| {
            if Instant::now() > deadline {
                timed_out = true;
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let names = refs_query.capture_names();
        let mut seen = HashSet::new();
        let mut matches = cursor.matches_with_options(
            refs_query,
            root,
            bytes,
            QueryCursorOptions::new().progress_callback(&mut rprogress),
        );
        while let Some(m) = matches.next() {
            let is_ref = m
                .captures()
                .iter()
                .any(|c| names[c.index as usize].starts_with("reference."));
            if !is_ref {
                continue;
            }
            for c in m.captures() {
                if names[c.index as usize] != "name" {
                    continue;
                }
                let name = clean_name(node_text(text, c.node));
                if name.is_empty() || name.len() > 200 {
                    continue;
                }
                let line = c.node.start_position().row as u32 + 1;
                if seen.insert((name.clone(), line)) {
                    references.push(Reference { name, line });
                }
            }
        }
        // A timed-out reference query keeps what it found.
        references.sort_by(|a, b| (a.line, &a.name).cmp(&(b.line, &b.name)));
    }
    Ok((definitions, references, declarations))
}

/// A declaration without a body found by the definitions query.
struct Declared {
    byte_start: usize,
    byte_end: usize,
    /// 0-based rows of the declaration's first and last lines, and of its name.
    first_row: usize,
    last_row: usize,
    name_row: usize,
    name: String,
}

/// Most comment lines above a declaration that are its description.
const MAX_COMMENT_LINES: usize = 40;
/// Most definitions before a declaration looked at for the one enclosing it.
const MAX_SCOPE_LOOK: usize = 4096;

/// The declarations that a comment describes (above them or beside them), each named as its
/// definition would be: the innermost definition around it (class, namespace) is its scope.
fn described(text: &str, lines: &crate::Lines, defs: &[Symbol], declared: Vec<Declared>) -> Vec<Declaration> {
    let mut out: Vec<Declaration> = Vec::new();
    for d in declared {
        if d.name.is_empty() || d.name.len() > 300 || d.last_row >= lines.count() {
            continue;
        }
        let mut first = d.first_row;
        while first > 0 && d.first_row - first < MAX_COMMENT_LINES {
            // The lines that join a definition's unit above it describe a declaration too.
            let (s, e) = lines.range(first - 1);
            if !crate::units::leading_line(&text[s..e]) {
                break;
            }
            first -= 1;
        }
        let comment = crate::comments(&text[lines.range(first).0..lines.range(d.last_row).1]);
        if comment.trim().is_empty() {
            continue;
        }
        // Definitions are sorted by start: the innermost one holding the declaration is the
        // nearest before it that ends after it.
        let before = defs.partition_point(|s| s.byte_start <= d.byte_start);
        let scope = defs[..before]
            .iter()
            .rev()
            .take(MAX_SCOPE_LOOK)
            .find(|s| d.byte_end <= s.byte_end && (s.byte_start, s.byte_end) != (d.byte_start, d.byte_end))
            .map(Symbol::qualified_name);
        out.push(Declaration {
            name: match scope {
                Some(sc) => format!("{sc}.{}", d.name),
                None => d.name,
            },
            line: d.name_row as u32 + 1,
            comment,
        });
    }
    out.sort_by(|a, b| (a.line, &a.name).cmp(&(b.line, &b.name)));
    out.dedup_by(|b, a| (a.line, &a.name) == (b.line, &b.name));
    out
}

fn kind_of(capture: &str) -> SymbolKind {
    match capture {
        "function" => SymbolKind::Function,
        "method" => SymbolKind::Method,
        "class" => SymbolKind::Class,
        "struct" => SymbolKind::Struct,
        "enum" => SymbolKind::Enum,
        "interface" => SymbolKind::Interface,
        "type" => SymbolKind::Type,
        "module" => SymbolKind::Module,
        "constant" => SymbolKind::Constant,
        "variable" => SymbolKind::Variable,
        "field" => SymbolKind::Field,
        "macro" => SymbolKind::Macro,
        "impl" => SymbolKind::Impl,
        _ => SymbolKind::Other,
    }
}

fn node_text<'t>(text: &'t str, node: Node) -> &'t str {
    text.get(node.start_byte()..node.end_byte()).unwrap_or("")
}

/// Strip quotes of string keys and surrounding whitespace.
fn clean_name(s: &str) -> String {
    let s = s.trim();
    let s = s.trim_matches(|c| c == '"' || c == '\'' || c == '`');
    s.trim().to_string()
}

/// Node kinds of bodies: a variable or constant declared inside one is local, not a definition.
const BODIES: &[&str] = &[
    "block",
    "statement_block",
    "compound_statement",
    "function_body",
    "constructor_body",
    "class_body",
    "field_declaration_list",
    "arrow_function",
    "parameter_list",
    "for_statement",
    "for_in_statement",
    "for_range_loop",
    "condition_clause",
];

fn is_local(node: Node) -> bool {
    let mut p = node.parent();
    while let Some(n) = p {
        if BODIES.contains(&n.kind()) {
            return true;
        }
        p = n.parent();
    }
    false
}

/// Whether `node` is inside the body of a function definition.
fn inside_function(node: Node) -> bool {
    let mut p = node.parent();
    while let Some(n) = p {
        if n.kind() == "function_definition" {
            return true;
        }
        p = n.parent();
    }
    false
}

/// A C++ qualified name (`ns::Outer<T>::name`) as its last part and the qualifiers before it,
/// joined by `.` without template arguments (`ns.Outer`); `None` when it has no last part.
fn split_qualified(full: &str) -> Option<(String, Option<String>)> {
    let parts: Vec<&str> = full.split("::").map(str::trim).collect();
    let last = (*parts.last()?).to_string();
    let quals: Vec<&str> = parts[..parts.len() - 1]
        .iter()
        .map(|p| p.split('<').next().unwrap_or(p).trim())
        .filter(|p| !p.is_empty())
        .collect();
    Some((last, (!quals.is_empty()).then(|| quals.join("."))))
}

fn definition(
    lang: Lang,
    text: &str,
    lines: &crate::Lines,
    node: Node,
    name_node: Option<Node>,
    mut kind: SymbolKind,
) -> Option<Raw> {
    if matches!(kind, SymbolKind::Variable | SymbolKind::Constant) && is_local(node) {
        return None;
    }
    // C has no functions inside functions: what parses as one there is a macro used as a
    // statement (`vmcase(OP_MOVE) { … }`, `list_for_each(p, head) { … }`), read as an old-style
    // definition of the macro's name. (In C++ it could be a local class's method: local too.)
    if matches!(lang, Lang::C | Lang::Cpp) && node.kind() == "function_definition" && inside_function(node) {
        return None;
    }
    let mut qualifier = None;
    let (name, name_node) = match name_node {
        Some(n) if kind == SymbolKind::Impl => (impl_name(node_text(text, n)), n),
        // C++: a nested class defined outside its class (`struct TableBuilder::Rep {`).
        Some(n) if n.kind() == "qualified_identifier" => {
            let (last, quals) = split_qualified(node_text(text, n))?;
            qualifier = quals;
            (last, n)
        }
        // C++: a specialization (`struct type_caster<std::basic_string<C, T>, enable_if_t<…>> {`)
        // is named by its template, not by its arguments, which may run over lines.
        Some(n) if n.kind() == "template_type" => {
            let name = n.child_by_field_name("name").unwrap_or(n);
            (clean_name(node_text(text, name)), n)
        }
        Some(n) => (clean_name(node_text(text, n)), n),
        None => {
            // C/C++: the name is inside the declarator.
            let d = node.child_by_field_name("declarator")?;
            let n = declared_name(d)?;
            let full = node_text(text, n);
            if n.kind() == "qualified_identifier" {
                let (last, quals) = split_qualified(full)?;
                qualifier = quals;
                (last, n)
            } else if lang == Lang::Cpp
                && n.kind() != "destructor_name"
                && text[..n.start_byte()].trim_end().ends_with('~')
            {
                // A destructor after a macro (`EXPORT ~Guard()`) parses with its `~` in an
                // error node beside the name: it is still `~Guard`.
                (format!("~{}", full.trim()), n)
            } else {
                (full.trim().to_string(), n)
            }
        }
    };
    if name.is_empty() || name.len() > 300 {
        return None;
    }
    match lang {
        Lang::Python if kind == SymbolKind::Constant && name.chars().any(char::is_lowercase) => {
            kind = SymbolKind::Variable;
        }
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx
            if kind == SymbolKind::Constant && !node_text(text, node).starts_with("const") =>
        {
            kind = SymbolKind::Variable;
        }
        // `Layer.prototype.match = function …`, `res.redirect = …`, `app.use = …`: the object
        // is the scope (`Layer`, `res`, `app`); `exports.x` and `module.exports.x` have none.
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx
            if name_node.parent().is_some_and(|p| p.kind() == "member_expression") =>
        {
            if let Some(obj) = name_node.parent().and_then(|p| p.child_by_field_name("object")) {
                let path: Vec<&str> = node_text(text, obj)
                    .split('.')
                    .map(str::trim)
                    .filter(|p| !matches!(*p, "prototype" | "exports" | "module" | "this" | ""))
                    .collect();
                if !path.is_empty()
                    && path
                        .iter()
                        .all(|p| p.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '$'))
                {
                    qualifier = Some(path.join("."));
                }
            }
        }
        Lang::Go if kind == SymbolKind::Method => {
            qualifier = node
                .child_by_field_name("receiver")
                .and_then(|r| receiver_type(node_text(text, r)));
        }
        Lang::C | Lang::Cpp if kind == SymbolKind::Variable && node_text(text, node).contains("const ") => {
            kind = SymbolKind::Constant;
        }
        _ => {}
    }
    let name_line = name_node.start_position().row as u32 + 1;
    Some(located(lines, text, node, name_line, name, kind, qualifier))
}

/// An anonymous default export (`export default (config) => {…}`, `export default class {…}`),
/// `export` keyword and all, named `name` (the file's).
fn default_export(text: &str, lines: &crate::Lines, export: Node, name: &str, kind: SymbolKind) -> Raw {
    let name_line = export.start_position().row as u32 + 1;
    located(lines, text, export, name_line, name.to_string(), kind, None)
}

/// A definition spanning `node`, its name on `name_line`.
fn located(
    lines: &crate::Lines,
    text: &str,
    node: Node,
    name_line: u32,
    name: String,
    kind: SymbolKind,
    qualifier: Option<String>,
) -> Raw {
    let mut byte_start = node.start_byte();
    let mut byte_end = node.end_byte().max(byte_start);
    while byte_start > 0 && !text.is_char_boundary(byte_start) {
        byte_start -= 1;
    }
    while byte_end < text.len() && !text.is_char_boundary(byte_end) {
        byte_end += 1;
    }
    let line_start = lines.line_of(byte_start) as u32 + 1;
    // A node ending just after a newline ends on the line before.
    let last = if byte_end > byte_start { byte_end - 1 } else { byte_end };
    let line_end = (lines.line_of(last) as u32 + 1).max(line_start);
    Raw {
        sym: Symbol {
            name,
            kind,
            scope: None,
            line_start,
            line_end,
            name_line: name_line.clamp(line_start, line_end),
            byte_start,
            byte_end,
        },
        qualifier,
    }
}

/// The name node inside a C/C++ declarator (through pointers, references, arrays, …).
fn declared_name(mut d: Node) -> Option<Node> {
    for _ in 0..32 {
        match d.kind() {
            "identifier"
            | "field_identifier"
            | "type_identifier"
            | "qualified_identifier"
            | "destructor_name"
            | "operator_name"
            | "primitive_type" => return Some(d),
            _ => {}
        }
        d = match d.child_by_field_name("declarator") {
            Some(n) => n,
            None => {
                // parenthesized_declarator and friends have no field: take the first named child.
                let mut c = d.walk();
                d.named_children(&mut c).find(|n| n.kind() != "attribute_specifier")?
            }
        };
    }
    None
}

/// `impl<T> fmt::Display for &'a Foo<T>` type text → `Foo`: the last word before the generic
/// arguments (`&'a mut Serializer<W, F>` → `Serializer`, `dyn Error + Send` → `Error`,
/// `[u8]` → `u8`); a type with no name (a tuple, a function pointer) is its whole text.
fn impl_name(ty: &str) -> String {
    let base = ty.split('<').next().unwrap_or(ty);
    let base = base.split('+').next().unwrap_or(base);
    if base.contains('(') {
        return ty.trim().to_string();
    }
    let last = base.split_whitespace().last().unwrap_or(base);
    let last = last.rsplit("::").next().unwrap_or(last);
    let name = last.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_'));
    if name.is_empty() {
        ty.trim().to_string()
    } else {
        name.to_string()
    }
}

/// `(s *Server[T])` → `Server`.
fn receiver_type(recv: &str) -> Option<String> {
    let inner = recv.trim().trim_start_matches('(').trim_end_matches(')');
    let ty = inner.split_whitespace().last()?;
    let ty = ty.trim_start_matches('*');
    let ty = ty.split('[').next()?;
    let ty = ty.rsplit('.').next()?;
    (!ty.is_empty()).then(|| ty.to_string())
}

#[cfg(test)]
mod impl_name_tests {
    use super::impl_name;

    #[test]
    fn the_type_an_impl_is_for_is_its_last_word_before_generics() {
        assert_eq!(impl_name("Foo<T>"), "Foo");
        assert_eq!(impl_name("&'a mut Serializer<W, F>"), "Serializer");
        assert_eq!(impl_name("&'a Foo<T>"), "Foo");
        assert_eq!(impl_name("&mut Foo"), "Foo");
        assert_eq!(impl_name("dyn Error + Send + Sync"), "Error");
        assert_eq!(impl_name("std::collections::HashMap<K, V>"), "HashMap");
        assert_eq!(impl_name("[u8]"), "u8");
        assert_eq!(impl_name("Box<dyn Fn()>"), "Box");
        assert_eq!(impl_name("()"), "()");
        assert_eq!(impl_name("(A, B)"), "(A, B)");
        assert_eq!(impl_name("fn(A) -> B"), "fn(A) -> B");
    }
}
