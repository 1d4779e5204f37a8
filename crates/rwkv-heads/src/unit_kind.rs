//! What kind of unit a retrieved one is, from its path, name and text: a test or benchmark, a
//! declaration without a body, a type stub. Retrieval weighs each.

/// Whether a unit is a test or a benchmark: in such a file, or a `mod tests` / `mod bench` /
/// `test_…` / `testX` / `bench_…` inside a source file (those answer questions about tests).
pub(crate) fn is_test_unit(path: &str, name: &str) -> bool {
    is_test_path(path)
        || name
            .split('.')
            .any(|p| matches!(p, "bench" | "benches") || starts_with_test_word(p) || p.starts_with("bench_"))
}

/// Whether a unit is named as a test, by its file's name (`test_app.py`, `x_test.go`,
/// `SelectorTest.java`, `a.spec.ts`) or its own (`test_x`, `TestX`, `SelectorTest.handlesX`,
/// `tests.x`, `bench_x`). Unlike [`is_test_unit`], a folder does not count: a store whose every
/// path runs through `fixtures/` or `tests/` still has names that answer.
pub(crate) fn is_named_test(path: &str, name: &str) -> bool {
    let file = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let stem = file.split('.').next().unwrap_or(file);
    let test_word = |p: &str| p.ends_with("Test") || p.ends_with("Tests");
    is_test_file_name(&file.to_ascii_lowercase())
        || test_word(stem)
        || name.split('.').any(|p| {
            let l = p.to_ascii_lowercase();
            test_word(p)
                || starts_with_test_word(p)
                || l.starts_with("bench_")
                || matches!(l.as_str(), "bench" | "benches")
        })
}

/// Whether a name begins with the word "test" (`test`, `tests`, `test_x`, `testX`, `TestX`,
/// `test2`), not with a longer word that starts so (`testable`, `testify`, `testing`).
fn starts_with_test_word(part: &str) -> bool {
    let Some(rest) = part.strip_prefix("test").or_else(|| part.strip_prefix("Test")) else {
        return false;
    };
    let rest = rest.strip_prefix('s').unwrap_or(rest);
    rest.chars()
        .next()
        .is_none_or(|c| c == '_' || c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Whether a unit's code is a declaration without a body: it ends in `;` (a C prototype, an
/// interface method), `...` or `pass` (a Python `@overload` stub).
pub(crate) fn has_no_body(text: &str) -> bool {
    let last = text.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("");
    last.ends_with(';') || last.ends_with("...") || last == "pass"
}

/// Whether a unit's code is preprocessor lines only (a run of `#define` aliases, `#if`s): it
/// declares names that code elsewhere defines.
pub(crate) fn is_preprocessor_only(text: &str) -> bool {
    let mut code = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("/*") && !l.starts_with('*') && !l.starts_with("//"))
        .peekable();
    code.peek().is_some() && code.all(is_directive)
}

/// Whether a trimmed line is a C preprocessor directive (`#define`, `#  if`, …), not a Python or
/// shell comment or a Markdown heading.
fn is_directive(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('#') else {
        return false;
    };
    let word: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect();
    matches!(
        word.as_str(),
        "define" | "undef" | "if" | "ifdef" | "ifndef" | "elif" | "else" | "endif" | "include" | "pragma"
    )
}

/// Whether a path looks like a test, example or benchmark file.
fn is_test_path(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    p.split(['/', '\\']).any(|c| {
        matches!(
            c,
            "test"
                | "tests"
                | "testing"
                | "__tests__"
                | "spec"
                | "specs"
                | "examples"
                | "example"
                | "benches"
                | "bench"
                | "fixtures"
                | "testdata"
        )
    }) || p.rsplit('/').next().is_some_and(is_test_file_name)
}

/// Whether a lowercase file name is a test file's (`test_app.py`, `x_test.go`, `a.test.js`,
/// `a.spec.ts`).
fn is_test_file_name(f: &str) -> bool {
    f.starts_with("test_") || f.contains("_test.") || f.contains(".test.") || f.contains(".spec.")
}

/// Whether a path holds declarations only, type stubs (`.pyi`, `.d.ts`), or a build's copy of
/// the code: a JavaScript bundle (`dist/axios.js`, `x.min.js`, `x.bundle.js`), its functions
/// renamed and transpiled beside the modules they were built from, or a source map (`x.js.map`,
/// which holds the sources as JSON strings).
pub(crate) fn is_stub_path(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    let js = [".js", ".cjs", ".mjs"].iter().any(|e| p.ends_with(e));
    p.ends_with(".pyi")
        || p.ends_with(".d.ts")
        || p.ends_with(".d.mts")
        || p.ends_with(".d.cts")
        || (js && (p.starts_with("dist/") || p.contains("/dist/") || p.contains(".min.") || p.contains(".bundle.")))
        || [".js.map", ".cjs.map", ".mjs.map", ".css.map"]
            .iter()
            .any(|e| p.ends_with(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_and_bundles_are_told() {
        assert!(is_stub_path("attrs/__init__.pyi"));
        assert!(is_stub_path("axios/index.d.cts"));
        assert!(is_stub_path("axios/dist/esm/axios.js"));
        assert!(is_stub_path("dist/browser/axios.cjs"));
        assert!(is_stub_path("vendor/jquery.min.js"));
        assert!(is_stub_path("lib/index.cjs.map"));
        assert!(!is_stub_path("axios/lib/helpers/buildURL.js"));
        assert!(!is_stub_path("distance/metric.js"));
        assert!(!is_stub_path("src/dist/mod.rs"));
    }

    #[test]
    fn test_paths_are_told() {
        assert!(is_test_path("tests/test_app.py"));
        assert!(is_test_path("src/foo.test.js"));
        assert!(is_test_path("pkg/x_test.go"));
        assert!(!is_test_path("src/flask/app.py"));
        assert!(!is_test_path("src/contest.rs"));
        // Tests and benchmarks inside a source file, by their module or their name.
        assert!(is_test_unit("src/postings/mod.rs", "bench.bench_compress"));
        assert!(is_test_unit("src/reader.rs", "tests.folds_twice"));
        assert!(is_test_unit("src/app.py", "test_app"));
        assert!(!is_test_unit("src/bench.rs", "Bencher.run"));
        assert!(!is_test_unit("src/postings/mod.rs", "BlockEncoder.compress"));
        assert!(is_test_unit("src/parser.ts", "testParsesEmptyInput"));
        assert!(!is_test_unit("src/matcher.ts", "testable"));
        // Named as tests, whatever the folders.
        assert!(is_named_test(
            "src/test/java/SelectorTest.java",
            "SelectorTest.handlesCommas"
        ));
        assert!(is_named_test("command_test.go", "TestPersistentHooks"));
        assert!(is_named_test("src/reader.rs", "tests.folds_twice"));
        assert!(is_named_test("tests/test_app.py", "test_app"));
        assert!(!is_named_test("fixtures/code/src/main.rs", "eval"));
        assert!(!is_named_test("tests/semaphore_batch.rs", "release_permits_at_drop"));
        assert!(is_named_test("src/test/java/NodeTest.java", "NodeTest.testAttr"));
        assert!(is_named_test("src/x.rs", "tests"));
        // A source helper whose name begins with a longer word is not a test.
        assert!(!is_named_test("src/matcher.ts", "testable"));
        assert!(!is_named_test("src/testify.go", "testify.Assert"));
        assert!(!is_named_test("lib/testing.py", "testing_mode"));
    }

    #[test]
    fn declarations_without_bodies_are_told() {
        assert!(has_no_body("int fold(int n);"));
        assert!(has_no_body("@overload\ndef get(self, k: str) -> str: ...\n"));
        assert!(has_no_body("def f():\n    pass\n\n"));
        assert!(!has_no_body("public String title() {\n    return t;\n}"));
        assert!(!has_no_body("def f():\n    return 1\n"));
        // A run of aliases under `#if`s declares; a function-like macro's body is one line too,
        // but is the only definition of its name (the caller checks for another).
        assert!(is_preprocessor_only(
            "/* renames */\n#ifdef Z_PREFIX\n#  define gzopen z_gzopen\n#endif\n"
        ));
        assert!(!is_preprocessor_only("#define MAX 3\nint f(void) {\n}\n"));
        assert!(!is_preprocessor_only("// only a comment\n"));
        // A Python comment or a Markdown heading is not a directive.
        assert!(!is_preprocessor_only("# Usage\n## Options\n"));
    }
}
