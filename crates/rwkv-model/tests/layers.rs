//! The import picture of rwkv-model: four parts, each importing only the parts below it —
//! tokenizers (nothing), file formats (`tensor`, `loader`: nothing), CPU kernels (`simd`,
//! `kernels`, `linalg`, `panels`, `rows16`, `quant`, `gemm_bf16`: formats), the model (the rest:
//! anything) — with `error` shared by all. So no circle of modules crosses a part, and each part
//! can become a crate of its own.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Shared,
    Tokenizers,
    Formats,
    Kernels,
    Model,
}

/// The part a module (the first segment after `crate::`, or a file's first path segment) is in.
fn part_of(module: &str) -> Part {
    match module {
        "error" | "Error" | "Result" => Part::Shared,
        "tokenizer" => Part::Tokenizers,
        "tensor" | "loader" | "ggml" | "formats" => Part::Formats,
        "simd" | "kernels" | "linalg" | "panels" | "rows16" | "quant" | "gemm_bf16" | "cpu_kernels" => Part::Kernels,
        _ => Part::Model,
    }
}

/// What each part may import.
fn allowed(from: Part, to: Part) -> bool {
    to == Part::Shared
        || from == to
        || match from {
            Part::Shared | Part::Tokenizers | Part::Formats => false,
            Part::Kernels => to == Part::Formats,
            Part::Model => true,
        }
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The `crate::X` modules a file's code (not its comments) names.
fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_test = false;
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        // Unit tests may reach anything (they check one part against another).
        if line.trim_start().starts_with("#[cfg(test)]") {
            in_test = true;
        }
        if in_test {
            continue;
        }
        for (i, _) in code.match_indices("crate::") {
            // `$crate::` in macros is the crate's own path too.
            let rest = &code[i + "crate::".len()..];
            let m: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !m.is_empty() {
                out.insert(m);
            }
        }
    }
    out
}

#[test]
fn no_part_of_rwkv_model_imports_a_part_above_it() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 30);
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
        if rel == "lib.rs" {
            continue;
        }
        let first = rel.split('/').next().unwrap().trim_end_matches(".rs");
        let from = part_of(first);
        for m in imports(&std::fs::read_to_string(f).unwrap()) {
            let to = part_of(&m);
            if !allowed(from, to) {
                wrong.push(format!("{rel} ({from:?}) imports crate::{m} ({to:?})"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layering:\n{}", wrong.join("\n"));
}

/// No circle of modules at all: every module's `crate::` imports form a graph without cycles
/// (a module is a top-level file or directory of `src/`).
#[test]
fn the_modules_of_rwkv_model_import_each_other_without_a_circle() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
        let module = rel.split('/').next().unwrap().trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue;
        }
        let deps = imports(&std::fs::read_to_string(f).unwrap());
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(deps.into_iter().filter(|d| *d != module && part_of(d) != Part::Shared));
    }
    assert!(graph.len() > 15);
    // Depth-first search for a back edge, reporting the circle.
    fn visit(
        m: &str,
        graph: &std::collections::BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut circle = path[i..].to_vec();
            circle.push(m.to_string());
            return Some(circle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for d in graph.get(m).into_iter().flatten() {
            if graph.contains_key(d)
                && let Some(c) = visit(d, graph, path, done)
            {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Some(circle) = visit(m, &graph, &mut Vec::new(), &mut done) {
            panic!("an import circle: {}", circle.join(" → "));
        }
    }
}

/// The check can fail: an upward import is caught.
#[test]
fn an_upward_import_is_caught() {
    let text = "use crate::linalg::ActQuant;\nfn f() { crate::blocks::head_shape(&[]); }\n";
    let found = imports(text);
    assert!(found.contains("linalg") && found.contains("blocks"));
    assert!(!allowed(part_of("tensor"), part_of("linalg")));
    assert!(!allowed(part_of("linalg"), part_of("blocks")));
    assert!(allowed(part_of("v7"), part_of("linalg")));
}
