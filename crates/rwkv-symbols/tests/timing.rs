//! `cargo test -p rwkv-symbols --release --test timing -- --ignored --nocapture`

use std::path::Path;
use std::time::{Duration, Instant};

use rwkv_symbols::{Method, Options, extract, units};

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "target") {
                walk(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Time extract + units over every `.rs` file of the workspace's crates.
#[test]
#[ignore]
fn time_workspace_rust_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let texts: Vec<(String, String)> = files
        .iter()
        .filter_map(|p| Some((p.display().to_string(), std::fs::read_to_string(p).ok()?)))
        .collect();
    let bytes: usize = texts.iter().map(|t| t.1.len()).sum();
    // Warm up the query compilation.
    let _ = extract("a.rs", "code", "fn a() {}", &Options::default());
    let t = Instant::now();
    let (mut defs, mut refs, mut nunits, mut fallbacks) = (0, 0, 0, 0);
    let mut slowest = (Duration::ZERO, String::new());
    for (path, text) in &texts {
        let t1 = Instant::now();
        let f = extract(path, "code", text, &Options::default());
        let u = units(text, &f, 60, 4096);
        let d = t1.elapsed();
        if d > slowest.0 {
            slowest = (d, path.clone());
        }
        defs += f.definitions.len();
        refs += f.references.len();
        nunits += u.len();
        if !matches!(f.method, Method::TreeSitter(_)) {
            fallbacks += 1;
            eprintln!("fallback {path}: {:?}", f.note);
        }
    }
    let took = t.elapsed();
    eprintln!(
        "{} files, {:.1} MB: {defs} definitions, {refs} references, {nunits} units, {fallbacks} fallbacks in {took:?} ({:.1} MB/s); slowest {:?} {}",
        texts.len(),
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / took.as_secs_f64(),
        slowest.0,
        slowest.1
    );
}

/// Print the symbols and units of the files named in `SYMBOLS_DUMP` (paths, `:`-separated).
#[test]
#[ignore]
fn dump_files() {
    let Ok(list) = std::env::var("SYMBOLS_DUMP") else {
        return;
    };
    for path in list.split(':') {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let f = extract(path, "code", &text, &Options::default());
        eprintln!("== {path} {:?} {:?}", f.method, f.note);
        for s in &f.definitions {
            eprintln!(
                "  {:9} {}{} {}-{} (name {})",
                s.kind.as_str(),
                s.scope.as_deref().map(|s| format!("{s}.")).unwrap_or_default(),
                s.name,
                s.line_start,
                s.line_end,
                s.name_line
            );
        }
        for u in units(&text, &f, 60, 4096) {
            let name = u.symbol.map(|d| f.definitions[d].name.as_str()).unwrap_or("-");
            eprintln!(
                "  unit {}-{} {name}{}",
                u.line_start,
                u.line_end,
                if u.head { " (head)" } else { "" }
            );
        }
    }
}
