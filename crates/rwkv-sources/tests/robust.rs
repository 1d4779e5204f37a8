//! Bad input never stops a run: each bad input is one error, every good input still comes out.

use rwkv_sources::Options;

use crate::util::{collect, fixture, paths, summary};

#[test]
fn bad_inputs_are_errors_for_themselves_alone() {
    let inputs = [
        "books/lighthouse.txt",
        "books/bad/bomb.epub",
        "books/three.epub",
        "books/bad/no-opf.epub",
        "books/bad/not-a-zip.epub",
        "web/bad/broken.html",
        "web/bad/truncated.warc",
        "books/bad/damaged.pdf",
        "web/article.html",
        "code/src/bad_utf8.rs",
        "books/tides.pdf",
    ]
    .map(fixture);
    let items = collect(paths(&inputs), Options::default());
    let s = summary(&items, &crate::util::fixtures());
    assert_eq!(
        s,
        [
            "doc books/lighthouse.txt",
            "expands_too_large books/bad/bomb.epub",
            "doc books/three.epub",
            "malformed books/bad/no-opf.epub",
            "malformed books/bad/not-a-zip.epub",
            "doc web/bad/broken.html",
            // A WARC's warcinfo and request records are skipped by policy, listed as not pages.
            "not_a_page web/bad/truncated.warc#urn:uuid:00000001-0000-0000-0000-000000000000",
            "not_a_page web/bad/truncated.warc#https://example.org/one",
            "doc https://example.org/one",
            "not_a_page web/bad/truncated.warc#https://example.org/two",
            "doc https://example.org/two",
            "not_a_page web/bad/truncated.warc#https://example.org/three",
            "malformed web/bad/truncated.warc",
            "malformed books/bad/damaged.pdf",
            "doc web/article.html",
            "doc code/src/bad_utf8.rs",
            "doc books/tides.pdf",
        ]
    );
    let broken = items[5].as_ref().unwrap();
    assert!(broken.text.contains("broken markup was the subject") && broken.title == "Broken page");
    let bad_utf8 = items[15].as_ref().unwrap();
    assert_eq!(bad_utf8.decoding.replaced, 1);
    let bomb = items[1].as_ref().unwrap_err().to_string();
    assert!(bomb.contains("bomb.epub") && bomb.contains("zip bomb"), "{bomb}");
}

#[test]
fn epub_expanding_past_the_cap_is_stopped() {
    // The same bomb with a lower per-entry cap (the inflating check, not the ratio check).
    let opts = Options {
        max_expanded_size: 1 << 20,
        ..Options::default()
    };
    let items = collect(
        paths(&[fixture("books/bad/bomb.epub"), fixture("books/three.epub")]),
        opts,
    );
    let s = summary(&items, &crate::util::fixtures());
    assert_eq!(s, ["expands_too_large books/bad/bomb.epub", "doc books/three.epub"]);
}
