//! Copies among the best units: the same text in several documents (a book's one-page print
//! beside its chapters, vendored files) and near copies (a bundle's copy of a module's
//! function) are kept once, from the smallest document, the others listed as its duplicates.

use std::collections::{BTreeMap, BTreeSet};

use crate::rank::SHORTER;
use crate::retrieve::{Candidate, last_name, word_set};

/// The best `top` of `cands` (in rank order), each text once: the same text in several
/// documents is kept from the smallest document, the others listed as its duplicates; a
/// declaration without a body (an overload signature, a prototype) after its implementation
/// adds nothing and is dropped.
pub(crate) fn distinct(cands: Vec<Candidate>, top: usize) -> Vec<Candidate> {
    let mut kept: Vec<Candidate> = Vec::new();
    for c in cands {
        if c.text.trim().is_empty() {
            continue;
        }
        if c.features[SHORTER] == 1.0 && kept.iter().any(|k| k.path == c.path && k.name == c.name) {
            continue;
        }
        if let Some(k) = kept.iter_mut().find(|k| k.text_hash == c.text_hash) {
            if c.doc_bytes < k.doc_bytes {
                let mut c = c;
                c.score = k.score;
                c.duplicates = std::mem::take(&mut k.duplicates);
                c.duplicates.push(k.path.clone());
                *k = c;
            } else if !k.duplicates.contains(&c.path) && k.path != c.path {
                k.duplicates.push(c.path.clone());
            }
            continue;
        }
        kept.push(c);
        if kept.len() >= top.max(1) * 4 {
            break;
        }
    }
    kept.truncate(top.max(1));
    kept
}

/// Pages made from one template: prose sections of at least [`TEMPLATE_MIN_PAGES`] documents
/// whose text apart from their headings is the same (an old edition's "this page has moved"
/// notices under each chapter's title) say nothing of their own, and are dropped. Sections of
/// one document, a body under the same heading, and a chapter beside its copy in a print page
/// (copies, which [`alias_near_copies`] and [`distinct`] keep once) are not templates.
pub(crate) fn drop_templates(cands: &mut Vec<Candidate>) {
    // (body, headings) → its sections.
    let mut by_body: BTreeMap<u64, Vec<(usize, u64)>> = BTreeMap::new();
    for (i, c) in cands.iter().enumerate().filter(|(_, c)| c.kind == "section") {
        if let Some((body, headings)) = body_and_headings(&c.text) {
            by_body.entry(body).or_default().push((i, headings));
        }
    }
    let mut template = vec![false; cands.len()];
    for same in by_body.values() {
        let docs: BTreeSet<&str> = same.iter().map(|&(i, _)| cands[i].doc_id.as_str()).collect();
        let headings: BTreeSet<u64> = same.iter().map(|&(_, h)| h).collect();
        if docs.len() >= TEMPLATE_MIN_PAGES && headings.len() >= TEMPLATE_MIN_PAGES {
            for &(i, _) in same {
                template[i] = true;
            }
        }
    }
    let mut template = template.into_iter();
    cands.retain(|_| !template.next().unwrap_or(false));
}

/// Hashes of a section's non-blank lines other than its headings (Markdown `#` lines), and of
/// its headings; `None` when it has no heading or its body is shorter than
/// [`TEMPLATE_MIN_BYTES`].
fn body_and_headings(text: &str) -> Option<(u64, u64)> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let (mut body, mut headings) = (DefaultHasher::new(), DefaultHasher::new());
    let (mut body_bytes, mut heading_lines) = (0, 0);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with('#') {
            line.hash(&mut headings);
            heading_lines += 1;
        } else {
            line.hash(&mut body);
            body_bytes += line.len();
        }
    }
    (heading_lines > 0 && body_bytes >= TEMPLATE_MIN_BYTES).then(|| (body.finish(), headings.finish()))
}

/// How many of the best units (in rank order) are looked at for prose near copies: those past
/// it are never among the units kept, and comparing every section with every other one of a
/// large documentation store costs tens of milliseconds.
const PROSE_DEPTH: usize = 40;

/// The fewest pages, each under its own heading, that make a template: a chapter and its
/// copy in the book's print page may word the heading otherwise, and are two.
const TEMPLATE_MIN_PAGES: usize = 3;

/// The shortest body (bytes, blank lines and line ends left out) two sections share to be pages
/// of one template: short bodies ("See below.") are alike by chance.
const TEMPLATE_MIN_BYTES: usize = 80;

/// Near copies: a unit with the qualified name and nearly all the words of a better-ranked
/// unit of another document (a bundle's copy of a module's function, `dist/axios.js` beside
/// `lib/helpers/combineURLs.js`; a vendored copy with small edits), or a prose section with
/// nearly all the words of a better-ranked section (a book's one-page print, where every
/// chapter's heading is one level deeper, under the book's title), takes that unit's text
/// hash, so that it is read by the encoder and kept once, as an exact copy is.
pub(crate) fn alias_near_copies(cands: &mut [Candidate]) {
    // Same qualified name: `Table.set_implicit` and `InlineTable.set_implicit` are two
    // implementations however alike, not copies. A bundler's renaming (`toFormData$1`) is
    // undone. Prose sections are compared whatever their headings: a print page nests every
    // chapter under the book's title and may word a heading otherwise.
    let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, c) in cands.iter().enumerate() {
        if c.kind == "section" {
            // Only the best ones: each is compared with every one before it.
            if i < PROSE_DEPTH {
                by_name.entry(String::new()).or_default().push(i);
            }
        } else if !last_name(&c.name).is_empty() {
            by_name.entry(unbundled(&c.name)).or_default().push(i);
        }
    }
    let mut alias: Vec<(usize, usize)> = Vec::new();
    for same in by_name.values().filter(|v| v.len() > 1) {
        let words: Vec<BTreeSet<String>> = same.iter().map(|&i| word_set(&cands[i].text)).collect();
        // Each unit against the better-ranked ones that are not copies themselves.
        let mut originals: Vec<usize> = Vec::new();
        for (a, &i) in same.iter().enumerate() {
            let near = originals.iter().copied().find(|&b| {
                let j = same[b];
                cands[j].path != cands[i].path
                    && cands[j].text_hash != cands[i].text_hash
                    && near_copy(&words[a], &words[b])
            });
            match near {
                Some(b) => alias.push((i, same[b])),
                None => originals.push(a),
            }
        }
    }
    for (i, j) in alias {
        cands[i].text_hash = cands[j].text_hash.clone();
    }
}

/// A qualified name without the `$1`, `$2` a bundler adds to names that would clash.
fn unbundled(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (k, part) in name.split('.').enumerate() {
        if k > 0 {
            out.push('.');
        }
        let trimmed = part.trim_end_matches(|c: char| c.is_ascii_digit());
        out.push_str(match trimmed.strip_suffix('$') {
            Some(base) if trimmed.len() < part.len() && !base.is_empty() => base,
            _ => part,
        });
    }
    out
}

/// Whether two units' word sets are nearly the same: at least [`NEAR_COPY_SHARE`] of the words
/// of either are shared, and there are enough of them to tell.
fn near_copy(a: &BTreeSet<String>, b: &BTreeSet<String>) -> bool {
    let shared = a.intersection(b).count();
    let union = a.len() + b.len() - shared;
    a.len().min(b.len()) >= NEAR_COPY_MIN_WORDS && shared as f32 >= NEAR_COPY_SHARE * union as f32
}

/// The share of their words (of all the words of both) two units share to be near copies.
const NEAR_COPY_SHARE: f32 = 0.8;
/// The fewest distinct words a unit has to count as a near copy of another.
const NEAR_COPY_MIN_WORDS: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieve::tests::unit;

    #[test]
    fn overload_signatures_after_their_implementation_are_dropped() {
        let implementation = unit("switchMap", "function switchMap(p) {\n  return op(p);\n}", 26.0);
        let mut signature = unit("switchMap", "function switchMap(p: P): R;", 19.0);
        signature.text_hash = "sig".into();
        signature.features[SHORTER] = 1.0;
        let other = unit("mergeMap", "function mergeMap(p) {}", 18.0);
        let kept = distinct(vec![implementation.clone(), signature.clone(), other], 3);
        let names: Vec<&str> = kept.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(names, [implementation.text.as_str(), "function mergeMap(p) {}"]);
        // A signature alone (its implementation not among the best) stays.
        let kept = distinct(vec![signature], 3);
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn a_bundles_copy_is_kept_once_from_the_module() {
        let body = "function combineURLs(baseURL, relativeURL) {\n  // Creates a new URL by combining the specified URLs\n  return relativeURL\n    ? baseURL.replace(/\\/?\\/$/, '') + '/' + relativeURL.replace(/^\\/+/, '')\n    : baseURL;\n}";
        let mut bundled = unit("combineURLs", body, 18.0);
        bundled.path = "dist/esm/axios.js".into();
        bundled.doc_bytes = 98_000;
        bundled.text_hash = "bundle".into();
        let mut module = unit("combineURLs", &format!("export default {body}"), 17.0);
        module.text_hash = "module".into();
        // Another type's method of the same name and nearly the same words is no copy.
        let mut other = unit("InlineTable.combineURLs", body, 16.0);
        other.path = "lib/inline.js".into();
        other.text_hash = "other".into();
        assert_eq!(
            kept_once(vec![bundled, module, other]),
            [
                ("lib/combineURLs.js".to_string(), vec!["dist/esm/axios.js".to_string()]),
                ("lib/inline.js".to_string(), vec![])
            ]
        );
        assert_eq!(unbundled("toFormData$1.defaultVisitor"), "toFormData.defaultVisitor");
        assert_eq!(unbundled("$.ajax$"), "$.ajax$");
        assert_eq!(unbundled("a$b"), "a$b");
    }

    #[test]
    fn pages_of_one_template_are_dropped() {
        let notice = "The 2018 edition of the book is no longer distributed with Rust's documentation.\n\
                      If you came here via a link or web search, you may want to check out the current\n\
                      version of the book instead.";
        let workspaces = "A workspace is a set of packages that share the same Cargo.lock and output \
                          directory, so crates developed together agree on their dependencies.";
        let install = "The `cargo install` command allows you to install and use binary crates locally; \
                       it is not meant to replace system packages.";
        let section = |heading: &str, path: &str, text: &str| {
            let mut c = unit(heading, &format!("# {heading}\n\n{text}"), 10.0);
            c.kind = "section".into();
            c.path = path.into();
            c.doc_id = path.into();
            c
        };
        let mut cands = vec![
            section(
                "Installing Binaries",
                "book/ch14-04.html",
                "The `cargo install` command installs binary crates.",
            ),
            section("Installing Binaries", "book/2018/ch14-04.html", notice),
            section("Publishing a Crate", "book/2018/ch14-02.html", notice),
            section("Release Profiles", "book/2018/ch14-01.html", notice),
            // A chapter and its copy in the print page, under a heading worded otherwise.
            section("Cargo Install", "book/ch14-05.html", install),
            section("Installing with Cargo Install", "book/print.html", install),
            // The same body under the same heading is a copy, kept (once) by `distinct`.
            section("Workspaces", "book/ch14-03.html", workspaces),
            section("Workspaces", "book/copy/ch14-03.html", workspaces),
        ];
        drop_templates(&mut cands);
        let paths: Vec<&str> = cands.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "book/ch14-04.html",
                "book/ch14-05.html",
                "book/print.html",
                "book/ch14-03.html",
                "book/copy/ch14-03.html"
            ]
        );
    }

    #[test]
    fn a_book_sections_copy_in_its_print_page_is_kept_once_from_the_chapter() {
        let body = "In Rust, release profiles are predefined and customizable profiles with different \
                    configurations that allow a programmer to have more control over various options \
                    for compiling code. Each profile is configured independently of the others.";
        let section = |name: &str, heading: &str, path: &str, bytes: u64, score: f32| {
            let mut c = unit(name, &format!("{heading}\n\n{body}"), score);
            c.kind = "section".into();
            c.path = path.into();
            c.doc_bytes = bytes;
            c.text_hash = path.into();
            c
        };
        let print = section(
            "The Rust Programming Language.Release Profiles",
            "## Release Profiles",
            "book/print.html",
            1_500_000,
            20.0,
        );
        let chapter = section(
            "Customizing Builds with Release Profiles",
            "# Customizing Builds with Release Profiles",
            "book/ch14-01.html",
            4_000,
            19.0,
        );
        // Another chapter's section of the same heading and other words is no copy; the print's
        // copy is one whatever its heading.
        let mut other = section(
            "Customizing Builds with Release Profiles",
            "# Customizing Builds with Release Profiles",
            "book/ch99.html",
            4_000,
            18.0,
        );
        other.text = "# Customizing Builds with Release Profiles\n\nWorkspaces share one lock file and one \
                      output folder for all their members, so crates built together agree."
            .into();
        assert_eq!(
            kept_once(vec![print, chapter, other]),
            [
                ("book/ch14-01.html".to_string(), vec!["book/print.html".to_string()]),
                ("book/ch99.html".to_string(), vec![])
            ]
        );
    }

    /// The best three of `cands` once near copies are aliased: each path with its duplicates.
    fn kept_once(mut cands: Vec<Candidate>) -> Vec<(String, Vec<String>)> {
        alias_near_copies(&mut cands);
        distinct(cands, 3).into_iter().map(|c| (c.path, c.duplicates)).collect()
    }
}
