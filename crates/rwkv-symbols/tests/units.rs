mod common;

use common::{code, dump};
use rwkv_symbols::{FileSymbols, Options, Unit, extract, units};

/// Check the tiling invariants and return the units.
fn check(text: &str, f: &FileSymbols, max_lines: usize, max_bytes: usize) -> Vec<Unit> {
    let us = units(text, f, max_lines, max_bytes);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let starts: Vec<usize> = lines
        .iter()
        .scan(0, |acc, l| {
            let s = *acc;
            *acc += l.len();
            Some(s)
        })
        .collect();
    let mut covered = vec![0u32; lines.len()];
    let mut prev_end = 0;
    for u in &us {
        assert!(u.line_start >= 1 && u.line_start <= u.line_end, "{u:?}");
        assert!(u.line_start as usize <= lines.len() && u.line_end as usize <= lines.len());
        let (ls, le) = (u.line_start as usize - 1, u.line_end as usize - 1);
        assert_eq!(u.byte_start, starts[ls], "unit starts at its first line");
        assert_eq!(
            u.byte_end,
            starts[le] + lines[le].len(),
            "unit ends after its last line"
        );
        assert!(u.byte_start >= prev_end, "sorted, non-overlapping");
        prev_end = u.byte_end;
        let body = &text[u.byte_start..u.byte_end];
        assert!(!body.trim().is_empty(), "no blank-only unit");
        let n = u.line_end - u.line_start + 1;
        let single = n == 1;
        assert!(n as usize <= max_lines, "{u:?}");
        assert!(body.len() <= max_bytes || single, "{u:?} {} bytes", body.len());
        for c in &mut covered[ls..=le] {
            *c += 1;
        }
        if let Some(d) = u.symbol {
            assert!(d < f.definitions.len());
        }
    }
    for (i, l) in lines.iter().enumerate() {
        if !l.trim().is_empty() {
            assert_eq!(covered[i], 1, "line {} {l:?}", i + 1);
        }
    }
    // At most one head per definition.
    let mut heads = std::collections::HashMap::new();
    for u in &us {
        if u.head {
            *heads.entry(u.symbol.unwrap()).or_insert(0) += 1;
        }
    }
    assert!(heads.values().all(|&n| n == 1));
    us
}

fn unit_of_line(us: &[Unit], line: u32) -> &Unit {
    us.iter().find(|u| u.line_start <= line && line <= u.line_end).unwrap()
}

const PY: &str = r#"import os
import sys


@decorator
def url_for(endpoint, **values):
    """Build a URL."""
    return build(endpoint, values)


class AppContext:
    """The app context."""

    limit = 3

    # Push it.
    def push(self):
        helper()

    def pop(self):
        pass

A = 1
B = 2
C = 3
"#;

#[test]
fn python_units() {
    let f = code("app.py", PY);
    let us = check(PY, &f, 60, 4096);
    // Imports are module level.
    assert_eq!(unit_of_line(&us, 1).symbol, None);
    // The decorator joins its function.
    let u = unit_of_line(&us, 6);
    assert_eq!((u.line_start, u.line_end), (5, 8), "{us:?}\n{}", dump(&f));
    assert!(u.head);
    assert_eq!(f.definitions[u.symbol.unwrap()].name, "url_for");
    // The class header, docstring and fields are one unit.
    let u = unit_of_line(&us, 11);
    assert_eq!((u.line_start, u.line_end), (11, 14));
    // The comment above a method joins it.
    let u = unit_of_line(&us, 17);
    assert_eq!((u.line_start, u.line_end), (16, 18));
    assert_eq!(f.definitions[u.symbol.unwrap()].name, "push");
    let u = unit_of_line(&us, 20);
    assert_eq!((u.line_start, u.line_end), (20, 21));
    // Consecutive one-line constants are one unit.
    let u = unit_of_line(&us, 23);
    assert_eq!((u.line_start, u.line_end), (23, 25));
}

const RS: &str = r#"use std::fmt;

/// A point.
#[derive(Debug)]
pub struct Point {
    x: i32,
}

impl Point {
    /// Make one.
    pub fn new(x: i32) -> Self {
        Point { x }
    }

    pub fn get(&self) -> i32 {
        self.x
    }
}
"#;

#[test]
fn rust_units() {
    let f = code("lib.rs", RS);
    let us = check(RS, &f, 60, 4096);
    let u = unit_of_line(&us, 5);
    assert_eq!((u.line_start, u.line_end), (3, 7), "{us:?}");
    let u = unit_of_line(&us, 11);
    assert_eq!((u.line_start, u.line_end), (10, 13));
    assert!(u.head);
    let u = unit_of_line(&us, 9);
    assert_eq!(f.definitions[u.symbol.unwrap()].name, "Point");
    assert_eq!(f.definitions[u.symbol.unwrap()].kind.as_str(), "impl");
}

#[test]
fn long_definitions_split_at_blank_lines() {
    let mut text = String::from("fn big() {\n");
    for i in 0..50 {
        text.push_str(&format!("    let a{i} = {i};\n    let b{i} = a{i} * 2;\n\n"));
    }
    text.push_str("}\n");
    let f = code("big.rs", &text);
    let us = check(&text, &f, 20, 4096);
    assert!(us.len() >= 8);
    assert_eq!(us.iter().filter(|u| u.head).count(), 1);
    assert!(us[0].head);
    assert!(us.iter().all(|u| u.symbol == us[0].symbol));
    // Pieces end at blank lines: none starts with a `let b` line.
    for u in &us[1..] {
        assert!(text[u.byte_start..].trim_start().starts_with("let a"), "{u:?}");
    }
    // Byte limit.
    check(&text, &f, 1000, 200);
    // A single line over the byte limit is its own unit.
    let long = format!("x = 1\ny = '{}'\nz = 2\n", "a".repeat(5000));
    let f = code("l.py", &long);
    let us = check(&long, &f, 60, 1000);
    assert!(us.iter().any(|u| u.line_start == 2 && u.line_end == 2));
}

#[test]
fn a_function_keeps_its_local_helpers_unless_it_is_long() {
    let text = "class Group:\n    def invoke(self, ctx):\n        def _process(value):\n            return value\n\n        if self.chain:\n            return [_process(c) for c in ctx.args]\n        return _process(ctx)\n";
    let f = code("g.py", text);
    let us = check(text, &f, 60, 4096);
    // Cut at its helper, `invoke`'s head would be its signature alone and its body a piece
    // without its name: it is one unit, its head, and the helper is inside it.
    let u = unit_of_line(&us, 2);
    assert_eq!((u.line_start, u.line_end), (2, 8), "{us:?}\n{}", dump(&f));
    assert!(u.head);
    assert_eq!(f.definitions[u.symbol.unwrap()].name, "invoke");
    assert!(f.definitions.iter().any(|d| d.name == "_process"), "{}", dump(&f));
    // A function longer than twice the unit limit (a module wrapped in one) keeps its nested
    // definitions as their own units.
    let mut long = String::from("def outer():\n    def inner(x):\n        return x\n\n");
    for i in 0..30 {
        long.push_str(&format!("    a{i} = inner({i})\n"));
    }
    let f = code("o.py", &long);
    let us = check(&long, &f, 10, 4096);
    let u = unit_of_line(&us, 2);
    assert_eq!(f.definitions[u.symbol.unwrap()].name, "inner", "{us:?}\n{}", dump(&f));
    assert!(u.head);
    let us = check(&long, &f, 20, 4096);
    assert_eq!(f.definitions[unit_of_line(&us, 2).symbol.unwrap()].name, "outer");
}

#[test]
fn tiling_over_many_snippets() {
    let snippets: Vec<(&str, String)> = vec![
        ("a.py", PY.to_string()),
        ("a.rs", RS.to_string()),
        ("a.js", "// c\nconst a = () => 1;\n\n/** doc */\nclass K {\n  m() {}\n\n  n() {\n    return 1;\n  }\n}\nmodule.exports = { a };\n".to_string()),
        ("a.go", "package p\n\n// T is.\ntype T struct{}\n\nfunc (t T) M() {}\n".to_string()),
        ("a.c", "#include <a.h>\n#define A 1\n#define B 2\n\nint f(void) {\n\treturn A;\n}\n".to_string()),
        ("a.md", "pre\n# A\ntext\n\n## B\n\nx\n# C\n".to_string()),
        ("a.rst", "Title\n=====\n\ntext\n\nSub\n---\n\nmore\n".to_string()),
        ("a.rb", "class A\n  def x\n  end\nend\n\n\n\nputs 1\n".to_string()),
        ("a.txt", "just\n\n\ntext\nwithout definitions\n".to_string()),
        ("a.py", "x = 1\r\n\r\ndef f():\r\n    return x\r\n".to_string()),
        ("a.py", "def f():\n    pass".to_string()),
        ("a.rs", "\n\n\nfn a() {}\n\n\n".to_string()),
    ];
    for (path, text) in &snippets {
        let f = extract(path, "code", text, &Options::default());
        for (ml, mb) in [(60, 4096), (3, 4096), (1, 4096), (60, 30), (2, 10)] {
            check(text, &f, ml, mb);
        }
    }
}
