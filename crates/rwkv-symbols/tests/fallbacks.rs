mod common;

use std::time::{Duration, Instant};

use common::{code, dump, get, has, lines};
use rwkv_symbols::{Method, Options, SymbolKind as K, extract};

const MD: &str = "Intro text.\n\n# Guide\n\nSome words.\n\n## Install\n\n```sh\n# not a heading\n```\n\n### Linux\n\nDetails\n\n## Usage ##\n\nUse it.\n\nAppendix\n========\n\nSee also\n--------\nmore\n";

#[test]
fn markdown_headings() {
    let f = extract("docs/guide.md", "code", MD, &Options::default());
    assert_eq!(f.method, Method::Headings);
    let names: Vec<_> = f.definitions.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["Guide", "Install", "Linux", "Usage", "Appendix", "See also"],
        "{}",
        dump(&f)
    );
    assert!(f.definitions.iter().all(|s| s.kind == K::Section));
    lines(&f, MD, "Guide", 3, 3, 20);
    lines(&f, MD, "Guide.Install", 7, 7, 16);
    lines(&f, MD, "Install.Linux", 13, 13, 16);
    lines(&f, MD, "Guide.Usage", 17, 17, 20);
    lines(&f, MD, "Appendix", 21, 21, 26);
    lines(&f, MD, "Appendix.See also", 24, 24, 26);
    // Book and web texts use headings whatever the path.
    let f = extract(
        "some/page",
        "web",
        "# Title\n\ntext\n## Part\nmore\n",
        &Options::default(),
    );
    assert_eq!(f.method, Method::Headings);
    assert_eq!(f.definitions.len(), 2);
    assert_eq!(f.definitions[1].scope.as_deref(), Some("Title"));
}

const RST: &str = "=========\nThe Title\n=========\n\nIntro.\n\nSection One\n===========\n\nText.\n\nSub A\n-----\n\nMore.\n\nSection Two\n===========\n\nEnd.\n";

#[test]
fn rst_headings() {
    let f = extract("index.rst", "code", RST, &Options::default());
    assert_eq!(f.method, Method::Headings);
    lines(&f, RST, "The Title", 1, 2, 20);
    lines(&f, RST, "The Title.Section One", 7, 7, 16);
    lines(&f, RST, "Section One.Sub A", 12, 12, 16);
    lines(&f, RST, "The Title.Section Two", 17, 17, 20);
    let f = extract(
        "a.adoc",
        "code",
        "= Doc\n\n== Part\ntext\n----\n== not\n----\n",
        &Options::default(),
    );
    let names: Vec<_> = f.definitions.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Doc", "Part"]);
}

const RUBY: &str = "require 'json'\n\nmodule Shop\n  class Cart\n    def initialize\n      @items = []\n    end\n\n    def self.empty\n      new\n    end\n  end\nend\n\ndef helper(x)\n  x\nend\n";

#[test]
fn patterns_ruby_and_lua() {
    let f = code("cart.rb", RUBY);
    assert_eq!(f.method, Method::Patterns);
    assert!(f.references.is_empty());
    has(&f, "Shop", K::Module);
    lines(&f, RUBY, "Shop", 3, 3, 13);
    has(&f, "Shop.Cart", K::Class);
    lines(&f, RUBY, "Shop.Cart", 4, 4, 12);
    has(&f, "Shop.Cart.initialize", K::Method);
    lines(&f, RUBY, "Shop.Cart.initialize", 5, 5, 7);
    has(&f, "Shop.Cart.empty", K::Method);
    has(&f, "helper", K::Function);
    lines(&f, RUBY, "helper", 15, 15, 17);

    let lua = "local M = {}\n\nlocal function util(a)\n  return a\nend\n\nfunction M.run(x)\n  return util(x)\nend\n\nreturn M\n";
    let f = code("mod.lua", lua);
    assert_eq!(f.method, Method::Patterns);
    has(&f, "util", K::Function);
    has(&f, "run", K::Function);
    lines(&f, lua, "run", 7, 7, 11);

    let misc = "pub(crate) async fn go() {}\n#define LIMIT 4\nexport default class Widget {}\nstatic int counter = 0;\nmacro_rules! m { () => {} }\n";
    let f = code("notes.txt", misc);
    has(&f, "go", K::Function);
    has(&f, "LIMIT", K::Macro);
    has(&f, "Widget", K::Class);
    has(&f, "m", K::Macro);
    assert!(!f.definitions.iter().any(|s| s.name == "int"), "{}", dump(&f));
}

#[test]
fn minified_js_falls_back_quickly() {
    let mut text = String::from("!function(e){");
    while text.len() < 200_000 {
        text.push_str("var a=function(b){return b+1};e.x=a(e.y);");
    }
    text.push_str("}(window);\n");
    let t = Instant::now();
    let f = code("bundle.min.js", &text);
    assert!(t.elapsed() < Duration::from_millis(500), "{:?}", t.elapsed());
    assert_eq!(f.method, Method::Patterns);
    assert!(f.note.as_deref().unwrap().contains("minified"), "{:?}", f.note);
    let u = rwkv_symbols::units(&text, &f, 60, 4096);
    assert_eq!(u.len(), 1);
}

#[test]
fn huge_generated_file_falls_back() {
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 3 << 20 {
        text.push_str(&format!(
            "pub const VALUE_{i}: u32 = {i};\nfn f{i}() -> u32 {{ VALUE_{i} }}\n"
        ));
        i += 1;
    }
    let t = Instant::now();
    let f = code("generated.rs", &text);
    let u = rwkv_symbols::units(&text, &f, 60, 4096);
    let took = t.elapsed();
    assert_eq!(f.method, Method::Patterns);
    assert!(f.note.as_deref().unwrap().contains("over 1 MiB"), "{:?}", f.note);
    assert!(f.definitions.len() > 10_000);
    assert!(!u.is_empty());
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn parse_time_cap() {
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&format!("def f{i}(x):\n    return g(x) + {i}\n"));
    }
    let opts = Options {
        time_cap: Duration::from_micros(1),
        ..Options::default()
    };
    let t = Instant::now();
    let f = extract("big.py", "code", &text, &opts);
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(f.method, Method::Patterns);
    assert!(f.note.as_deref().unwrap().contains("timed out"), "{:?}", f.note);
    has(&f, "f19999", K::Function);
}

#[test]
fn many_class_keywords_stay_quick() {
    // Every `class` starts a look for macros before a name: a line of nothing else (900 KB,
    // after short lines, so the file does not look minified) must not make that quadratic.
    let mut text = "namespace n { int v = 1; }\n".repeat(4_000);
    text.push_str(&"class A struct B(x) ".repeat(45_000));
    let opts = Options {
        time_cap: Duration::from_millis(200),
        ..Options::default()
    };
    let t = Instant::now();
    let _ = extract("gen.cc", "code", &text, &opts);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[test]
fn odd_text_never_panics() {
    let samples = [
        "",
        " ",
        "\n\n\n",
        "\t \r\n \r\n",
        "\0\0\0",
        "fn a() {}\0\0 struct \0",
        "def f():\r\n    return 1\r\n\r\nclass C:\r\n    pass\r\n",
        "# T\r\n\r\ntext\r\n## U\r\n",
        "é\u{feff}ü\n    \n€",
        "}}}}{{{{(((",
        "impl",
        "fn",
        "#define",
        "class\n",
        "==\n--\n",
    ];
    let paths = [
        "a.rs", "a.py", "a.js", "a.ts", "a.tsx", "a.go", "a.java", "a.c", "a.cpp", "a.h", "a.md", "a.rst", "a.adoc",
        "a.rb", "a",
    ];
    for text in samples {
        for path in paths {
            for kind in ["code", "book", "web"] {
                let f = extract(path, kind, text, &Options::default());
                if text.is_empty() {
                    assert_eq!(f.method, Method::None);
                }
                for s in &f.definitions {
                    let _ = &text[s.byte_start..s.byte_end];
                    assert!(
                        s.line_start <= s.name_line && s.name_line <= s.line_end,
                        "{path} {text:?}"
                    );
                }
                let u = rwkv_symbols::units(text, &f, 60, 4096);
                for u in u {
                    let _ = &text[u.byte_start..u.byte_end];
                }
            }
        }
    }
    let crlf = "def f():\r\n    return 1\r\n";
    let f = code("a.py", crlf);
    assert_eq!(get(&f, "f").line_end, 2);
    let f = code("a.rb", "def g\r\nend\r\n");
    assert_eq!(get(&f, "g").name, "g");
}
