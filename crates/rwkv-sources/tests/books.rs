//! Books: chapters and titles from plain text, Markdown, EPUB and PDF.

use rwkv_sources::{DocKind, Options};

use crate::util::{collect, docs, fixture, part_titles, paths};

#[test]
fn gutenberg_text_chapters() {
    let d = docs(collect(paths(&[fixture("books/lighthouse.txt")]), Options::default())).remove(0);
    assert_eq!(d.kind, DocKind::Book);
    assert_eq!(d.title, "The Lighthouse Keeper");
    assert_eq!(
        part_titles(&d),
        [
            "Front matter",
            "CHAPTER I. The Lighthouse",
            "CHAPTER II. The Keeper's Log",
            "CHAPTER III. The Last Lamp"
        ]
    );
    // Header and footer are gone, CRLF is normalized, chapters start at their headings.
    assert!(!d.text.contains("Project Gutenberg") && !d.text.contains("FULL LICENSE") && !d.text.contains('\r'));
    assert!(d.part_text(&d.parts[2]).starts_with("CHAPTER II.\n\nThe Keeper's Log"));
    assert!(d.part_text(&d.parts[3]).contains("last lamp") && !d.part_text(&d.parts[3]).contains("keeper's log was"));
    assert!(d.part_text(&d.parts[0]).contains("Contents"));
}

#[test]
fn markdown_book_chapters() {
    let d = docs(collect(paths(&[fixture("books/notes.md")]), Options::default())).remove(0);
    assert_eq!(d.title, "Field Notes");
    assert_eq!(part_titles(&d), ["Field Notes", "Spring", "Summer", "Autumn"]);
}

#[test]
fn epub_spine_and_toc() {
    let d = docs(collect(paths(&[fixture("books/three.epub")]), Options::default())).remove(0);
    assert_eq!(d.title, "Three Chapters");
    assert_eq!(
        part_titles(&d),
        [
            "Chapter One: Arrival",
            "Chapter Two: The Storm",
            "Chapter Three: Departure"
        ]
    );
    let [one, two, three] = [0, 1, 2].map(|i| d.part_text(&d.parts[i]));
    assert!(one.starts_with("# Chapter One: Arrival") && one.contains("harbour") && !one.contains("storm"));
    // Chapter three lives in the same file as chapter two, behind an anchor.
    assert!(two.starts_with("# Chapter Two: The Storm") && two.contains("storm") && !two.contains("departure"));
    assert!(three.starts_with("# Chapter Three: Departure") && three.contains("departure"));
    // Styles and images are dropped.
    assert!(!d.text.contains("color") && !d.text.contains("png") && !d.text.contains("picture of the harbour"));
}

#[test]
fn pdf_outline_chapters() {
    let d = docs(collect(paths(&[fixture("books/tides.pdf")]), Options::default())).remove(0);
    assert_eq!(d.title, "Tides");
    assert_eq!(
        part_titles(&d),
        ["Part One: Low Water", "Part Two: Flood", "Part Three: Ebb"]
    );
    assert!(d.part_text(&d.parts[0]).contains("reeds were tall"));
    assert!(d.part_text(&d.parts[1]).contains("keeper counted") && !d.part_text(&d.parts[1]).contains("reeds"));
    assert!(d.part_text(&d.parts[2]).contains("shone like glass"));
}

#[test]
fn books_directory_is_read_as_documents() {
    let items = collect(
        paths(&[fixture("books")]),
        Options {
            exclude: vec!["bad".into()],
            ..Options::default()
        },
    );
    let titles: Vec<_> = docs(items).into_iter().map(|d| d.title).collect();
    assert_eq!(
        titles,
        ["The Lighthouse Keeper", "Field Notes", "Three Chapters", "Tides"]
    );
}
