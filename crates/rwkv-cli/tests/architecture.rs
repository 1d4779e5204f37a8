//! ARCHITECTURE.md stays true: every path, crate and Rust item it names in backticks exists.
//!
//! What is checked, for each backticked span:
//! - a path (`crates/rwkv-store/src/manifest.rs`, `backend/`, `wkv7.cu`, `pipelines/`): some file
//!   or directory of the repository ends with it;
//! - a crate (`rwkv-store`, `rwkv_heads`): a package of the workspace;
//! - a Rust path (`Store::open`, `rwkv_pipeline::ingest`, `Error::Device`): each `CamelCase`
//!   segment is a type, trait or variant defined in the sources and the last segment is defined
//!   there (a `fn`, type, variant, constant, module or field); with a crate prefix, in that crate;
//! - a lone `CamelCase` name (`Model`, `BackendModel`) or `call()`: defined in the sources.
//!
//! Flags, JSON keys, formulas and file contents in backticks are left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every file and directory of the repository (relative, `/`-separated), minus build outputs.
fn tree(dir: &Path, rel: &str, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if rel.is_empty() && (name.starts_with("target") || name == ".git" || name.starts_with(".cuda")) {
            continue;
        }
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            out.push(format!("{path}/"));
            tree(&e.path(), &path, out);
        } else {
            out.push(path);
        }
    }
}

/// Names each crate's sources define, by crate (`rwkv_store`, …): functions, types, traits,
/// variants, constants, statics, modules, macros and fields.
/// The key under which [`definitions`] lists every module name of the workspace.
const MODULES: &str = "#modules";

fn definitions(files: &[String]) -> BTreeMap<String, BTreeSet<String>> {
    let item = regex::Regex::new(
        r"(?m)\b(?:fn|struct|enum|trait|type|const|static|mod|union|macro_rules!)\s+([A-Za-z_][A-Za-z0-9_]*)",
    )
    .unwrap();
    // Variants and fields: a line that starts with a name followed by `(`, `{`, `,`, `:` or `=`.
    let member =
        regex::Regex::new(r"(?m)^\s*(?:pub(?:\([a-z]+\))?\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*(?:[({,:=]|$)").unwrap();
    let reexport = regex::Regex::new(r"(?m)\bpub use [^;]*?\b([A-Za-z_][A-Za-z0-9_]*)\s*(?:[,};]|as)").unwrap();
    let module = regex::Regex::new(r"\bmod\s+([a-z_][a-z0-9_]*)").unwrap();
    let alias = regex::Regex::new(r"\bas\s+([A-Za-z_][A-Za-z0-9_]*)\s*;").unwrap();
    let mut by_crate: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files.iter().filter(|f| f.ends_with(".rs")) {
        let krate = if let Some(rest) = f.strip_prefix("crates/") {
            rest.split('/').next().unwrap().replace('-', "_")
        } else if f.starts_with("benches/") {
            "rwkv_bench".to_string()
        } else {
            continue;
        };
        let text = std::fs::read_to_string(root().join(f)).unwrap_or_default();
        let names = by_crate.entry(krate).or_default();
        for re in [&item, &member, &reexport, &alias] {
            for c in re.captures_iter(&text) {
                names.insert(c[1].to_string());
            }
        }
        // A file is a module of its name (as is its directory for `mod.rs`).
        let mut mods = vec![Path::new(f).file_stem().unwrap().to_string_lossy().into_owned()];
        if let Some(dir) = Path::new(f).parent().and_then(|d| d.file_name()) {
            mods.push(dir.to_string_lossy().into_owned());
        }
        mods.extend(module.captures_iter(&text).map(|c| c[1].to_string()));
        names.extend(mods.iter().cloned());
        by_crate.entry(MODULES.into()).or_default().extend(mods);
    }
    by_crate
}

/// Names of other crates' and std's items that ARCHITECTURE.md mentions (they are not ours to
/// define).
const FOREIGN: [&str; 10] = [
    "Sync",
    "Send",
    "MultiGzDecoder",
    "ConcurrencyMode",
    "Durability",
    "EnvFilter",
    "FmtSpan",
    "Tensor",
    "Device",
    "Arc",
];

fn is_camel(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && s.chars().any(|c| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.chars().next().unwrap().is_ascii_digit()
}

/// What is wrong with one backticked span, if it names something that does not exist.
fn check(
    span: &str,
    files: &[String],
    crates: &BTreeSet<String>,
    defs: &BTreeMap<String, BTreeSet<String>>,
) -> Option<String> {
    let all: BTreeSet<&String> = defs.values().flatten().collect();
    let defined = |name: &str| all.iter().any(|d| d.as_str() == name);
    let span = span.trim();
    // Paths of the repository: a source file name (`model.rs`, `wkv7.cu`), or a `/` path
    // that is not a placeholder (`SHARDS/shard-i`), a run-time file or a build output.
    const EXT: [&str; 6] = [".rs", ".cu", ".sh", ".py", ".toml", ".md"];
    let bare = span.strip_suffix("()").unwrap_or(span);
    let plain = !bare.contains(' ')
        && !bare.contains("::")
        && !bare.contains(['(', '{', '=', '<', '*', '$', '|', '[', ','])
        && !span.starts_with('-')
        && !span.starts_with("http");
    let placeholder = span
        .split(['/', '-', '_', '.'])
        .any(|w| w.len() >= 3 && w.chars().all(|c| c.is_ascii_uppercase()));
    let built = span.starts_with(".cuda") || span.starts_with(".git/") || span.starts_with("target");
    let source_file = EXT.iter().any(|e| span.len() > e.len() && span.ends_with(e));
    let looks_path = plain && !placeholder && !built && span.len() > 1 && (span.contains('/') || source_file);
    if looks_path {
        let p = span.trim_start_matches("./");
        let found = files.iter().any(|f| {
            f == p
                || f.ends_with(&format!("/{p}"))
                || (!p.ends_with('/') && (f == &format!("{p}/") || f.ends_with(&format!("/{p}/"))))
        });
        return (!found).then(|| format!("path `{span}` does not exist"));
    }
    if (!plain || placeholder) && !span.contains("::") {
        // Not a name (a formula, a command line) or not a real one.
        return None;
    }
    // Crates.
    if (span.starts_with("rwkv-") || span.starts_with("rwkv_")) && is_ident(&span.replace('-', "_")) {
        let c = span.replace('-', "_");
        return (!crates.contains(&c)).then(|| format!("crate `{span}` does not exist"));
    }
    // Rust paths: `A::b`, `crate::x::Y`, `Type::method()`.
    let code = span.trim_end_matches("()").trim_end_matches('!');
    if code.contains("::") {
        let segs: Vec<&str> = code.split("::").collect();
        if !segs.iter().all(|s| is_ident(s)) {
            return None;
        }
        let (scope, rest): (Option<&BTreeSet<String>>, &[&str]) = match defs.get(segs[0]) {
            Some(d) if segs[0].starts_with("rwkv_") => (Some(d), &segs[1..]),
            _ if segs[0] == "crate" || segs[0] == "super" || segs[0] == "self" => (None, &segs[1..]),
            _ if segs[0].starts_with("rwkv_") => return Some(format!("crate of `{span}` does not exist")),
            _ => (None, &segs[..]),
        };
        for (i, s) in rest.iter().enumerate() {
            let last = i + 1 == rest.len();
            // Foreign types (std, candle, tantivy…) in the middle are not ours to check.
            let ours = defs.get(MODULES).is_some_and(|m| m.contains(*s));
            if i == 0 && scope.is_none() && !is_camel(s) && !ours {
                // A foreign path (`std::fs`, `process::exit`): not ours to check.
                return None;
            }
            if !last && !is_camel(s) && scope.is_none() {
                continue;
            }
            if scope.is_none() && FOREIGN.contains(s) {
                return None;
            }
            let ok = match scope {
                Some(d) => d.contains(*s) || (!last && defined(s)),
                None => defined(s),
            };
            if !ok && (last || is_camel(s)) {
                return Some(format!(
                    "`{span}`: `{s}` is not defined{}",
                    if scope.is_some() { " in that crate" } else { "" }
                ));
            }
        }
        return None;
    }
    if is_camel(code) && code.len() > 3 && !FOREIGN.contains(&code) {
        return (!defined(code)).then(|| format!("`{span}` is not defined"));
    }
    if span.ends_with("()") && is_ident(code) && code.contains('_') {
        return (!defined(code)).then(|| format!("function `{span}` is not defined"));
    }
    None
}

/// The workspace's crates and binaries (`rwkv_store`, `rwkv_ingest`, `fold_bench`), `_`-spelled.
fn crates_and_binaries(files: &[String], defs: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = defs.keys().filter(|k| k.as_str() != MODULES).cloned().collect();
    for f in files {
        if let Some(bin) = f.split("/src/bin/").nth(1)
            && let Some(stem) = bin.strip_suffix(".rs")
            && !stem.contains('/')
        {
            names.insert(stem.replace('-', "_"));
        }
    }
    names.extend(["rwkv_bench", "fold_bench", "make_model"].map(String::from));
    names
}

#[test]
fn architecture_md_names_only_what_exists() {
    let mut files = Vec::new();
    tree(&root(), "", &mut files);
    let defs = definitions(&files);
    let crates = crates_and_binaries(&files, &defs);
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (n, line) in text.lines().enumerate() {
        // Fenced blocks are pictures, not references.
        for (i, span) in line.split('`').enumerate() {
            if i % 2 == 1 {
                checked += 1;
                if let Some(w) = check(span, &files, &crates, &defs) {
                    wrong.push(format!("ARCHITECTURE.md:{}: {w}", n + 1));
                }
            }
        }
    }
    assert!(
        checked > 200,
        "only {checked} spans read: is ARCHITECTURE.md still there?"
    );
    assert!(
        wrong.is_empty(),
        "{} stale references:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The checker itself can fail: names that do not exist are caught.
#[test]
fn the_checker_catches_what_does_not_exist() {
    let mut files = Vec::new();
    tree(&root(), "", &mut files);
    let defs = definitions(&files);
    let crates = crates_and_binaries(&files, &defs);
    for bad in [
        "crates/rwkv-store/src/nowhere.rs",
        "rwkv-nothing",
        "rwkv_pipeline::fold_fingerprint",
        "Store::no_such_method",
        "NoSuchTypeAnywhere",
        "no_such_function()",
    ] {
        assert!(check(bad, &files, &crates, &defs).is_some(), "{bad} passed");
    }
    for good in [
        "crates/rwkv-store/src/",
        "rwkv-store",
        "rwkv-ingest",
        "rwkv_pipeline::ingest",
        "process::exit",
        "shard.json",
        "Model::forward_seq",
        "BackendModel",
        "--lanes",
        "[R, C]",
    ] {
        assert_eq!(check(good, &files, &crates, &defs), None, "{good}");
    }
}
