#![allow(dead_code)]

use rwkv_symbols::{FileSymbols, Options, Symbol, SymbolKind, extract};

pub fn code(path: &str, text: &str) -> FileSymbols {
    extract(path, "code", text, &Options::default())
}

/// `scope.name` or `name`.
pub fn qual(s: &Symbol) -> String {
    match &s.scope {
        Some(sc) => format!("{sc}.{}", s.name),
        None => s.name.clone(),
    }
}

pub fn dump(f: &FileSymbols) -> String {
    let mut out = format!("{:?} {:?}\n", f.method, f.note);
    for s in &f.definitions {
        out += &format!(
            "  {} {} lines {}-{} name {}\n",
            s.kind.as_str(),
            qual(s),
            s.line_start,
            s.line_end,
            s.name_line
        );
    }
    out
}

/// The definition with this qualified name, panicking with a dump otherwise.
pub fn get<'a>(f: &'a FileSymbols, qualified: &str) -> &'a Symbol {
    f.definitions
        .iter()
        .find(|s| qual(s) == qualified)
        .unwrap_or_else(|| panic!("no {qualified} in\n{}", dump(f)))
}

pub fn has(f: &FileSymbols, qualified: &str, kind: SymbolKind) {
    let s = get(f, qualified);
    assert_eq!(s.kind, kind, "{qualified}\n{}", dump(f));
}

/// The definition's range, name line, and text consistency.
pub fn lines(f: &FileSymbols, text: &str, qualified: &str, start: u32, name: u32, end: u32) {
    let s = get(f, qualified);
    assert_eq!(
        (s.line_start, s.name_line, s.line_end),
        (start, name, end),
        "{qualified}\n{}",
        dump(f)
    );
    let _ = &text[s.byte_start..s.byte_end];
}

pub fn has_ref(f: &FileSymbols, name: &str, line: u32) {
    assert!(
        f.references.iter().any(|r| r.name == name && r.line == line),
        "no reference {name}@{line} in {:?}",
        f.references
    );
}
