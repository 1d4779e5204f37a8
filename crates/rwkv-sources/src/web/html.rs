//! HTML to readable text: main-content extraction for pages, plain rendering for chapters.
//!
//! dom_smoothie (a port of Mozilla's Readability) picks the main content, html2text renders it
//! as text that keeps headings (`## `), lists, code blocks and tables readable. What no crate
//! does, done here: removing boilerplate elements (navigation, headers, footers, asides,
//! forms, scripts, styles) *before* Readability scores the page, so a long footer cannot win;
//! falling back to the page's `<main>`/`<article>`/`<body>` when Readability finds nothing
//! readable or keeps too little of a semantic main element (documentation pages); and
//! recording where headings (or EPUB table-of-contents anchors) land in the rendered text, by
//! planting private-use-character markers in the DOM and collecting them after rendering.

use dom_query::Document as Dom;
use dom_smoothie::{Config, Readability};
use html2text::render::TextDecorator;

/// Marker delimiters: private-use characters that never occur in real text.
const MARK_OPEN: char = '\u{E000}';
const MARK_CLOSE: char = '\u{E001}';
/// Render width: wide enough that paragraphs are never wrapped.
const WIDTH: usize = 100_000;

/// Elements that are never article content.
const BOILERPLATE: &str = "script:not([type=\"application/ld+json\"]), style, noscript, template, iframe, object, embed, \
     svg, canvas, nav, aside, form, button, input, select, textarea, dialog, menu, \
     [role=navigation], [role=banner], [role=contentinfo], [role=complementary], [role=search], \
     [role=dialog], [aria-hidden=true], [hidden]";

/// A marker found in rendered text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mark {
    /// What was planted: `h2` for a heading of level 2, `f7` for anchor number 7.
    pub payload: String,
    /// Byte offset of the start of the line holding the marker, in the cleaned text.
    pub line_start: usize,
    /// That line's text without markers and without a leading `#…# `.
    pub line: String,
}

/// The readable content of a page.
#[derive(Debug, Clone)]
pub(crate) struct Page {
    pub title: String,
    pub text: String,
    /// Section starts `(heading, byte offset)`.
    pub sections: Vec<(String, usize)>,
    /// A URL the page declares for itself (browser "saved from" comment, canonical link).
    pub url: Option<String>,
}

/// html2text decorator for reading: no link brackets or footnotes, no images, Markdown-like
/// headings, lists and quotes, backticks around inline code.
#[derive(Clone, Debug)]
struct ReadingDecorator;

impl TextDecorator for ReadingDecorator {
    type Annotation = ();
    fn decorate_link_start(&mut self, _url: &str) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_link_end(&mut self) -> String {
        String::new()
    }
    fn decorate_em_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_em_end(&self) -> String {
        String::new()
    }
    fn decorate_strong_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strong_end(&self) -> String {
        String::new()
    }
    fn decorate_strikeout_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strikeout_end(&self) -> String {
        String::new()
    }
    fn decorate_code_start(&self) -> (String, ()) {
        ("`".into(), ())
    }
    fn decorate_code_end(&self) -> String {
        "`".into()
    }
    fn decorate_preformat_first(&self) {}
    fn decorate_preformat_cont(&self) {}
    fn decorate_image(&mut self, _src: &str, _title: &str) -> (String, ()) {
        (String::new(), ())
    }
    fn header_prefix(&self, level: usize) -> String {
        format!("{} ", "#".repeat(level.clamp(1, 6)))
    }
    fn quote_prefix(&self) -> String {
        "> ".into()
    }
    fn unordered_item_prefix(&self) -> String {
        "- ".into()
    }
    fn ordered_item_prefix(&self, i: i64) -> String {
        format!("{i}. ")
    }
    fn make_subblock_decorator(&self) -> Self {
        ReadingDecorator
    }
    fn finalise(&mut self, _urls: Vec<String>) -> Vec<html2text::render::TaggedLine<()>> {
        Vec::new()
    }
}

/// Renders an HTML fragment or document to text, with whitespace tidied (no trailing spaces,
/// at most one blank line in a row). Markers planted by [`plant`] survive as text.
pub(crate) fn render(html: &str) -> String {
    let rendered = html2text::config::with_decorator(ReadingDecorator)
        .allow_width_overflow()
        .no_table_borders()
        .string_from_read(html.as_bytes(), WIDTH)
        .unwrap_or_else(|_| Dom::from(html).select("body").text().to_string());
    tidy(&rendered)
}

/// Trailing spaces off, runs of blank lines squeezed to one, leading blank lines dropped.
pub(crate) fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// The marker text for `payload`.
pub(crate) fn marker(payload: &str) -> String {
    format!("{MARK_OPEN}{payload}{MARK_CLOSE}")
}

/// Plants a marker as the first child of every element matching `sel`, with `payload(node)`.
pub(crate) fn plant(dom: &Dom, sel: &str, payload: impl Fn(&dom_query::NodeRef) -> Option<String>) {
    for node in dom.select(sel).nodes() {
        if let Some(p) = payload(node) {
            node.prepend_html(format!("<span>{}</span>", marker(&p)));
        }
    }
}

/// Removes markers from `text`, returning the clean text and where each marker was.
pub(crate) fn take_marks(text: &str) -> (String, Vec<Mark>) {
    if !text.contains(MARK_OPEN) {
        return (text.to_string(), Vec::new());
    }
    let mut out = String::with_capacity(text.len());
    let mut marks = Vec::new();
    for line in text.split_inclusive('\n') {
        let line_start = out.len();
        let mut payloads = Vec::new();
        let mut rest = line;
        while let Some(p) = rest.find(MARK_OPEN) {
            out.push_str(&rest[..p]);
            let after = &rest[p + MARK_OPEN.len_utf8()..];
            match after.find(MARK_CLOSE) {
                Some(q) => {
                    payloads.push(after[..q].to_string());
                    rest = &after[q + MARK_CLOSE.len_utf8()..];
                }
                None => rest = after,
            }
        }
        out.push_str(rest);
        let clean = out[line_start..].trim();
        let title = clean.trim_start_matches('#').trim().to_string();
        marks.extend(payloads.into_iter().map(|payload| Mark {
            payload,
            line_start,
            line: title.clone(),
        }));
    }
    (out, marks)
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Removes boilerplate elements. `<header>` is kept inside `<article>`/`<main>` (it often holds
/// the headline); `<footer>` goes everywhere.
fn strip_boilerplate(dom: &Dom) {
    dom.select(BOILERPLATE).remove();
    for node in dom.select("header").nodes() {
        let in_content = node
            .ancestors_it(None)
            .any(|a| a.has_name("article") || a.has_name("main"));
        if !in_content {
            node.remove_from_parent();
        }
    }
    dom.select("footer").remove();
    // Common class/id names for site chrome that is not marked up semantically.
    dom.select(
        "#cookie-banner, .cookie-banner, #cookies, .cookie-consent, .skip-link, .skip-to-content, \
         .breadcrumb, .breadcrumbs, #sidebar, .sidebar, .site-header, .site-footer, #footer, #header, \
         .navbar, #navbar, .share-buttons, .social-share, .mw-editsection",
    )
    .remove();
}

/// Turns `<pre>` blocks into fenced code: the inline-code backticks of `<code>` inside are
/// unwrapped and ```` ``` ```` lines added around the block.
pub(crate) fn fence_code_blocks(dom: &Dom) {
    for code in dom.select("pre code").nodes() {
        code.replace_with_html(code.inner_html());
    }
    for pre in dom.select("pre").nodes() {
        pre.prepend_html("```\n");
        pre.append_html("\n```");
    }
}

/// The first `max` bytes of `s` or fewer: cut at the last character boundary at or before
/// `max`, never inside a multi-byte character.
fn head_of(s: &str, max: usize) -> &str {
    if max >= s.len() {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The URL a saved page declares: the browsers' `<!-- saved from url=(NNNN)URL -->` comment,
/// else `<link rel=canonical>`, else `og:url`.
fn declared_url(html: &str, dom: &Dom) -> Option<String> {
    if let Some(p) = head_of(html, 4096).find("saved from url=(") {
        let rest = &html[p + 16..];
        if let Some(close) = rest.find(')') {
            let url: String = rest[close + 1..].chars().take_while(|c| !c.is_whitespace()).collect();
            let url = url.trim_end_matches("-->").to_string();
            if url.starts_with("http") {
                return Some(url);
            }
        }
    }
    let canon = dom.select("link[rel=canonical]").attr("href").map(|s| s.to_string());
    let og = || {
        dom.select("meta[property=\"og:url\"]")
            .attr("content")
            .map(|s| s.to_string())
    };
    canon.or_else(og).filter(|u| u.starts_with("http"))
}

/// Extracts the main text of a page; `fallback_title` is used when the page has neither `<title>` nor `<h1>`.
pub(crate) fn extract_page(html: &str, fallback_title: &str) -> Page {
    let dom = Dom::from(html);
    let declared = declared_url(html, &dom);
    let title_tag = squash(&dom.select("head title").first().text());
    let h1 = squash(&dom.select("h1").first().text());
    strip_boilerplate(&dom);
    fence_code_blocks(&dom);
    plant(&dom, "h1, h2, h3, h4, h5, h6", |n| {
        n.node_name()
            .map(|name| name.to_string())
            .filter(|_| !n.text().trim().is_empty())
    });
    let root_sel = ["main", "[role=main]", "article", "body"]
        .into_iter()
        .find(|s| dom.select(s).length() == 1)
        .unwrap_or("body");
    let semantic = root_sel != "body";
    let root = dom.select(root_sel);
    let root_html = root.html().to_string();
    let root_len = root.text().split_whitespace().map(str::len).sum::<usize>();

    let mut title = String::new();
    let mut html_out: Option<String> = None;
    if dom_smoothie::is_probably_readable(&dom, None, None) {
        // The URL only serves to absolutize links, which are dropped anyway.
        let cfg = Config {
            max_elements_to_parse: 200_000,
            ..Default::default()
        };
        let readability = Readability::with_document(dom, None, Some(cfg));
        if let Ok(mut r) = readability
            && let Ok(article) = r.parse()
        {
            title = squash(&article.title);
            let kept = article.text_content.split_whitespace().map(str::len).sum::<usize>();
            // Readability can keep one section of a documentation page; prefer the page's own
            // main element when it keeps much less than half of it.
            if !(semantic && kept * 2 < root_len) {
                html_out = Some(article.content.to_string());
            }
        }
    }
    let chosen = html_out.unwrap_or(root_html);
    let rendered = render(&chosen);
    let (mut text, marks) = take_marks(&rendered);
    if title.is_empty() {
        title = if !title_tag.is_empty() {
            title_tag.clone()
        } else {
            h1.clone()
        };
    }
    if title.is_empty() {
        title = fallback_title.to_string();
    }
    // Choose section levels: h1-h2, or down to h3 when that gives too few.
    let level = |m: &Mark| {
        m.payload
            .strip_prefix('h')
            .and_then(|d| d.parse::<usize>().ok())
            .unwrap_or(9)
    };
    let mut max_level = 2;
    while max_level < 4 && marks.iter().filter(|m| level(m) <= max_level).count() < 2 {
        max_level += 1;
    }
    let mut sections: Vec<(String, usize)> = marks
        .iter()
        .filter(|m| level(m) <= max_level && !m.line.is_empty())
        .map(|m| (m.line.clone(), m.line_start))
        .collect();
    // Make sure the page says what it is: a headline when the text does not start with it.
    let head = head_of(&text, 400);
    if !text.is_empty() && !head.contains(title.as_str()) && !h1.is_empty() && !head.contains(h1.as_str()) {
        let prefix = format!("# {title}\n\n");
        text.insert_str(0, &prefix);
        for s in &mut sections {
            s.1 += prefix.len();
        }
    }
    Page {
        title,
        text,
        sections,
        url: declared,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        let (t, m) = take_marks(&format!("intro\n## {}Two\nbody {}\n", marker("h2"), marker("f1")));
        assert_eq!(t, "intro\n## Two\nbody \n");
        assert_eq!(
            m[0],
            Mark {
                payload: "h2".into(),
                line_start: 6,
                line: "Two".into()
            }
        );
        assert_eq!(m[1].line_start, 13);
    }

    #[test]
    fn boilerplate_goes_content_stays() {
        let html = r#"<html><head><title>Main Story - Site</title></head><body>
            <header><a href="/">Site</a> <nav><a href="/a">Home</a><a href="/b">Sections</a></nav></header>
            <aside>Trending elsewhere</aside>
            <main><article><h1>Main Story</h1>
            <p>The article body has several sentences. It goes on for a while, like news does, with commas, and detail.</p>
            <h2>Details</h2><ul><li>first point</li><li>second point</li></ul>
            <pre><code>fn main() {}</code></pre>
            <table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>
            </article></main>
            <footer>Copyright Site 2024. Privacy policy.</footer><script>var x = 1;</script></body></html>"#;
        let p = extract_page(html, "x");
        assert!(p.text.contains("The article body"), "{}", p.text);
        assert!(
            p.text.contains("- first point") && p.text.contains("```\nfn main() {}\n```"),
            "{}",
            p.text
        );
        for junk in ["Home", "Sections", "Trending", "Copyright", "var x"] {
            assert!(!p.text.contains(junk), "{junk} in {}", p.text);
        }
        assert!(p.title.contains("Main Story"));
        assert!(p.sections.iter().any(|s| s.0 == "Details"), "{:?}", p.sections);
    }

    #[test]
    fn a_head_cut_inside_a_multibyte_character_keeps_the_page() {
        assert_eq!(head_of("a“b", 2), "a");
        assert_eq!(head_of("a“b", 4), "a“");
        assert_eq!(head_of("ab", 400), "ab");
        // The page's first 400 bytes end inside a 3-byte curly quote for some N: each page is
        // extracted whole, with its headline, for every offset around byte 400.
        let quoted = "“quoted” text, ‘single’ too. ".repeat(4);
        for n in 385..=410 {
            let html = format!(
                "<html><head><title>A Page</title></head><body><main><h1>Headline</h1><p>{}{quoted}</p>\
                 <p>More body text follows here.</p></main></body></html>",
                "x".repeat(n)
            );
            let p = extract_page(&html, "fallback");
            assert!(p.text.contains("“quoted” text"), "n={n}: {}", p.text);
            assert!(p.text.contains("More body text"), "n={n}: {}", p.text);
        }
        // The same with a saved-from comment whose 4096-byte window ends inside a character.
        for n in 4090..=4096 {
            let html = format!(
                "<!-- saved from url=(0019)https://example.org/ --><html><body><p>{}{quoted}</p></body></html>",
                "x".repeat(n - 60)
            );
            let p = extract_page(&html, "fallback");
            assert!(p.text.contains("“quoted”"), "n={n}");
        }
    }
}
