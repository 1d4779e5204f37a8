//! Code bases: ignore rules, skips with reasons, order, languages, globs.

use std::os::unix::fs::{PermissionsExt, symlink};

use rwkv_sources::{DocKind, Input, Options};

use crate::util::{collect, copy_dir, fixture, summary};

/// A copy of fixtures/code plus what git cannot hold: a symlink loop to an ancestor, a
/// self-referential link, an unreadable file, a file over the cap and a FIFO.
fn code_tree() -> (tempfile::TempDir, std::path::PathBuf, bool, bool) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("code");
    copy_dir(&fixture("code"), &root);
    symlink("..", root.join("src/loop")).unwrap();
    symlink("self-link", root.join("self-link")).unwrap();
    // chmod 000 does not stop root (CI runs tests as root): when the file can still be read,
    // use a dangling symlink instead, which no user can read.
    let unreadable = root.join("unreadable.txt");
    std::fs::write(&unreadable, "secret").unwrap();
    std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000)).unwrap();
    let dangling = std::fs::read(&unreadable).is_ok();
    if dangling {
        std::fs::remove_file(&unreadable).unwrap();
        symlink("no-such-target", &unreadable).unwrap();
    }
    std::fs::write(root.join("big.txt"), "a\n".repeat((4 << 20) / 2 + 1)).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .is_ok_and(|s| s.success());
    (tmp, root, fifo, dangling)
}

/// What the walk of `code_tree` gives, following links or not (then each link is a named skip).
fn expected_walk(follow: bool, fifo: bool, dangling: bool) -> Vec<&'static str> {
    let mut expected = vec![
        "doc README.md",
        "doc Makefile",
        "too_large big.txt",
        "doc docs/guide.md",
        "not_regular fifo",
        "doc keep.log",
        "binary logo.png",
        if follow {
            "symlink_loop self-link"
        } else {
            "symlink self-link"
        },
        "doc src/README.md",
        "doc src/bad_utf8.rs",
        "empty src/empty.py",
        "doc src/eval.py",
        "doc src/generated/.gitignore",
        "doc src/generated/wanted.rs",
        if follow {
            "symlink_loop src/loop"
        } else {
            "symlink src/loop"
        },
        "doc src/main.rs",
        if dangling && !follow {
            "symlink unreadable.txt"
        } else {
            "unreadable unreadable.txt"
        },
    ];
    if !fifo {
        eprintln!("mkfifo unavailable: not checking the FIFO");
        expected.retain(|e| *e != "not_regular fifo");
    }
    expected
}

#[test]
fn walks_code_base_with_exact_documents_and_skips() {
    let (_tmp, root, fifo, dangling) = code_tree();
    let follow = Options {
        follow_links: true,
        ..Options::default()
    };
    let followed = collect(vec![Input::Path(root.clone())], follow);
    assert_eq!(summary(&followed, &root), expected_walk(true, fifo, dangling));
    let items = collect(vec![Input::Path(root.clone())], Options::default());
    assert_eq!(summary(&items, &root), expected_walk(false, fifo, dangling));
    assert!(
        items
            .iter()
            .filter_map(|i| i.as_ref().err())
            .filter(|e| e.reason() == "symlink")
            .all(|e| e.is_policy_skip())
    );

    let docs: Vec<_> = items.iter().filter_map(|i| i.as_ref().ok()).collect();
    assert!(docs.iter().all(|d| d.kind == DocKind::Code));
    let by_title = |t: &str| docs.iter().find(|d| d.title == t).unwrap_or_else(|| panic!("{t}"));
    assert_eq!(by_title("src/main.rs").language, Some("Rust"));
    assert_eq!(by_title("src/eval.py").language, Some("Python"));
    assert_eq!(by_title("Makefile").language, Some("Makefile"));
    let bad = by_title("src/bad_utf8.rs");
    assert_eq!((bad.decoding.encoding, bad.decoding.replaced), ("UTF-8", 1));
    assert!(bad.text.contains("café naïve") && bad.text.contains('\u{FFFD}'));
    // Markdown gets its headings as parts; other files are one part.
    assert_eq!(
        crate::util::part_titles(by_title("docs/guide.md")),
        ["Guide", "Install", "Use"]
    );
    assert_eq!(by_title("src/main.rs").parts.len(), 1);
    let main = by_title("src/main.rs");
    let at = main.text.find("fn eval").unwrap();
    assert!(main.cite(at).ends_with("src/main.rs:8"), "{}", main.cite(at));
    // Nothing ignored leaks in.
    for d in &docs {
        for ignored in [
            "debug.log",
            "build/",
            "secret.txt",
            "scratch/",
            "unwanted.rs",
            ".env",
            ".hidden",
        ] {
            assert!(!d.title.contains(ignored), "{} should be ignored", d.title);
        }
    }
}

#[test]
fn ids_are_stable_and_content_hashes_track_text() {
    let root = fixture("code");
    let a = collect(vec![Input::Path(root.clone())], Options::default());
    let b = collect(vec![Input::Path(root.clone())], Options::default());
    let ids = |v: &[Result<rwkv_sources::Document, rwkv_sources::Error>]| {
        v.iter()
            .filter_map(|i| i.as_ref().ok())
            .map(|d| (d.id, d.hash))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&a), ids(&b));
    let mut unique = ids(&a).into_iter().map(|x| x.0).collect::<Vec<_>>();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids(&a).len());
}

#[test]
fn include_exclude_and_hidden() {
    let root = fixture("code");
    let only_rs = Options {
        include: vec!["*.rs".into()],
        exclude: vec!["src/generated".into()],
        ..Options::default()
    };
    let items = collect(vec![Input::Path(root.clone())], only_rs);
    assert_eq!(summary(&items, &root), ["doc src/bad_utf8.rs", "doc src/main.rs"]);

    let hidden = Options {
        hidden: true,
        include: vec![".*".into(), "*.toml".into()],
        ..Options::default()
    };
    let items = collect(vec![Input::Path(root.clone())], hidden);
    assert_eq!(
        summary(&items, &root),
        [
            "doc .env",
            "doc .gitignore",
            "doc .hidden/config.toml",
            "doc .ignore",
            "doc src/generated/.gitignore"
        ]
    );

    let no_ignore = Options {
        respect_ignore_files: false,
        include: vec!["*.log".into(), "*.rs".into()],
        ..Options::default()
    };
    let items = collect(vec![Input::Path(root.clone())], no_ignore);
    let s = summary(&items, &root);
    assert!(
        s.contains(&"doc debug.log".to_string()) && s.contains(&"doc src/generated/unwanted.rs".to_string()),
        "{s:?}"
    );
}

#[test]
fn small_cap_and_single_file_inputs() {
    let root = fixture("code");
    let opts = Options {
        max_file_size: 100,
        include: vec!["*.rs".into()],
        ..Options::default()
    };
    let items = collect(vec![Input::Path(root.clone())], opts);
    assert_eq!(
        summary(&items, &root),
        [
            "doc src/bad_utf8.rs",
            "doc src/generated/wanted.rs",
            "too_large src/main.rs"
        ]
    );
    let main = root.join("src/main.rs");
    let items = collect(
        vec![Input::Path(main.clone()), Input::Path(root.join("missing.rs"))],
        Options::default(),
    );
    assert_eq!(summary(&items, &root), ["doc src/main.rs", "unreadable missing.rs"]);
}

/// A linked directory (ripgrep's `HomebrewFormula -> pkg/brew`) gives its files once: by default
/// the link is a named skip; with `follow_links` it is read as the directory it points to.
#[test]
fn a_linked_directory_is_read_once_unless_links_are_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    std::fs::create_dir_all(root.join("pkg/brew")).unwrap();
    std::fs::write(root.join("pkg/brew/formula.rb"), "class Formula\nend\n").unwrap();
    symlink("pkg/brew", root.join("HomebrewFormula")).unwrap();
    let items = collect(vec![Input::Path(root.clone())], Options::default());
    assert_eq!(
        summary(&items, &root),
        ["symlink HomebrewFormula", "doc pkg/brew/formula.rb"]
    );
    let follow = Options {
        follow_links: true,
        ..Options::default()
    };
    let items = collect(vec![Input::Path(root.clone())], follow);
    assert_eq!(
        summary(&items, &root),
        ["doc HomebrewFormula/formula.rb", "doc pkg/brew/formula.rb"]
    );
}
