//! Web pages: boilerplate removal, charsets, saved-page folders, WARC.

use rwkv_sources::{DocKind, Options};

use crate::util::{collect, docs, fixture, part_titles, paths, summary};

const BOILERPLATE: [&str; 7] = [
    "NAV-NEWS",
    "NAV-ABOUT",
    "ASIDE-RELATED-LINK",
    "FORM-SUBSCRIBE",
    "FOOTER-COPYRIGHT",
    "SCRIPT-TEXT",
    "font-family",
];

#[test]
fn article_without_boilerplate() {
    let d = docs(collect(paths(&[fixture("web/article.html")]), Options::default())).remove(0);
    assert_eq!(d.kind, DocKind::Web);
    assert!(d.title.starts_with("Tidal Energy Comes of Age"), "{}", d.title);
    for junk in BOILERPLATE {
        assert!(!d.text.contains(junk), "{junk} leaked into:\n{}", d.text);
    }
    for kept in [
        "tidal plant was the subject",
        "- Turbines sit on the sea bed.",
        "La Rance 240 MW",
        "```\ncapacity = sum(site.mw for site in sites)\n```",
        "The grid was",
    ] {
        assert!(d.text.contains(kept), "{kept} missing from:\n{}", d.text);
    }
    assert_eq!(
        part_titles(&d),
        ["Tidal Energy Comes of Age", "How it works", "Numbers"]
    );
}

#[test]
fn latin1_page_is_transcoded() {
    let d = docs(collect(paths(&[fixture("web/latin1.html")]), Options::default())).remove(0);
    assert_eq!(d.title, "Café crème");
    assert_eq!((d.decoding.encoding, d.decoding.replaced), ("windows-1252", 0));
    assert!(
        d.text
            .contains("Le café crème est servi très chaud, à la française, avec une pointe de naïveté.")
    );
}

#[test]
fn saved_pages_folder() {
    let root = fixture("web/saved");
    let items = collect(paths(std::slice::from_ref(&root)), Options::default());
    assert_eq!(summary(&items, &root), ["doc https://example.org/saved-page"]);
    let d = docs(items).remove(0);
    assert_eq!(d.path.as_deref(), Some(root.join("page.html").as_path()));
}

#[test]
fn warc_with_three_responses() {
    let warc = fixture("web/crawl.warc.gz");
    let items = collect(paths(std::slice::from_ref(&warc)), Options::default());
    let s = summary(&items, &fixture("web"));
    assert_eq!(
        s,
        [
            "not_a_page crawl.warc.gz#urn:uuid:00000001-0000-0000-0000-000000000000",
            "not_a_page crawl.warc.gz#https://example.org/one",
            "doc https://example.org/one",
            "not_a_page crawl.warc.gz#https://example.org/two",
            "doc https://example.org/two",
            "not_a_page crawl.warc.gz#https://example.org/three",
            "doc https://example.org/three",
            "unsupported crawl.warc.gz#https://example.org/logo.png"
        ]
    );
    assert!(
        items
            .iter()
            .all(|i| i.as_ref().err().is_none_or(|e| e.is_policy_skip()))
    );
    let d = docs(items.into_iter().filter(Result::is_ok).collect());
    assert_eq!(
        d.iter().map(|d| d.title.as_str()).collect::<Vec<_>>(),
        ["Page One", "Page Two", "Page Three"]
    );
    assert!(d[1].text.contains("second crawl page"), "chunked body decoded");
    assert!(
        d.iter()
            .all(|d| d.path.as_deref() == Some(warc.as_path()) && BOILERPLATE.iter().all(|b| !d.text.contains(b)))
    );
}
