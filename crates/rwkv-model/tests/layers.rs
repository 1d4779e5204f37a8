//! The import picture of the model's parts, each a crate: tokenizers (`rwkv-tokenizers`) and
//! file formats (`rwkv-formats`) depend on no crate of ours, the CPU kernels (`rwkv-kernels`)
//! only on the formats, and the model (`rwkv-model`) on those three; the sentence encoder
//! (`rwkv-embed`) on the formats and kernels. Inside each crate, the modules import each other
//! without a circle.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The crates of the model's parts and the crates of ours each may depend on.
const PARTS: &[(&str, &[&str])] = &[
    ("rwkv-tokenizers", &[]),
    ("rwkv-formats", &[]),
    ("rwkv-kernels", &["rwkv-formats"]),
    ("rwkv-model", &["rwkv-formats", "rwkv-kernels", "rwkv-tokenizers"]),
    // The sentence encoder beside the model: the same file formats and CPU kernels.
    ("rwkv-embed", &["rwkv-formats", "rwkv-kernels"]),
];

fn crates_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `rwkv-*` crates a manifest's `[dependencies]` names.
fn our_dependencies(manifest: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_deps = t == "[dependencies]";
            continue;
        }
        if in_deps && t.starts_with("rwkv-") {
            let name: String = t
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            out.insert(name);
        }
    }
    out
}

#[test]
fn each_part_depends_only_on_the_parts_below_it() {
    let mut wrong = Vec::new();
    for (name, allowed) in PARTS {
        let manifest = std::fs::read_to_string(crates_dir().join(name).join("Cargo.toml")).unwrap();
        let found = our_dependencies(&manifest);
        let allowed: BTreeSet<String> = allowed.iter().map(|s| s.to_string()).collect();
        if found != allowed {
            wrong.push(format!("{name} depends on {found:?}, expected {allowed:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
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

/// No circle of modules in any part: every module's `crate::` imports form a graph without
/// cycles (a module is a top-level file or directory of `src/`).
#[test]
fn the_modules_of_each_part_import_each_other_without_a_circle() {
    for (name, _) in PARTS {
        if let Some(circle) = circle_in(&crates_dir().join(name).join("src")) {
            panic!("{name}: an import circle: {}", circle.join(" → "));
        }
    }
}

/// A circle of `crate::` imports among the modules of `src`, if there is one.
fn circle_in(src: &Path) -> Option<Vec<String>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut graph: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for f in &files {
        let rel = f.strip_prefix(src).unwrap().to_string_lossy().replace('\\', "/");
        let module = rel.split('/').next().unwrap().trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue;
        }
        let deps = imports(&std::fs::read_to_string(f).unwrap());
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(
            deps.into_iter()
                .filter(|d| *d != module && d != "Error" && d != "Result"),
        );
    }
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
    graph.keys().find_map(|m| visit(m, &graph, &mut Vec::new(), &mut done))
}

/// The checks can fail: a circle and a dependency upwards are caught.
#[test]
fn a_circle_and_an_upward_dependency_are_caught() {
    let dir = std::env::temp_dir().join(format!("rwkv-layers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.rs"), "use crate::b::X;\n").unwrap();
    std::fs::write(dir.join("b.rs"), "fn f() { crate::c::g(); }\n").unwrap();
    std::fs::write(dir.join("c.rs"), "// crate::a is only named in a comment\n").unwrap();
    assert_eq!(circle_in(&dir), None);
    std::fs::write(dir.join("c.rs"), "pub use crate::a::Y;\n").unwrap();
    let circle = circle_in(&dir).expect("a → b → c → a");
    assert_eq!(circle.first(), circle.last());
    std::fs::remove_dir_all(&dir).unwrap();
    let deps = our_dependencies(
        "[dependencies]\nrwkv-model.workspace = true\nhalf = \"2\"\n[dev-dependencies]\nrwkv-cli = 1\n",
    );
    assert_eq!(deps, BTreeSet::from(["rwkv-model".to_string()]));
}
