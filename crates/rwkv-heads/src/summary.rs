//! Summaries from every saved state (map-reduce): each document's summary is generated from its
//! own final state, then the overall summary from reading those summaries, in order, with
//! their paths.
//!
//! Every generated summary is cached in the store's `summaries/` directory under a key made of
//! what it depends on: for a document its content hash, the model's fingerprint, the prompt
//! and the generation settings; for the overall summary the keys of the documents' summaries
//! in order. A second run reuses them all; an edited document regenerates its own summary (its
//! content hash changed) and the overall one. The cache is written atomically (temporary file,
//! rename) and is best effort: a store that cannot be written still summarizes.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::generate::read;
use crate::library::{AskOptions, Library, SummaryTarget, Timings};

/// Most tokens of one document's summary.
pub const DOCUMENT_SUMMARY_TOKENS: usize = 96;

/// Bumped when the prompts or the cache's contents change: old entries are then not found.
const SUMMARY_RULE: &str = "rwkv-reader summary v1";

/// One document's summary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DocumentSummary {
    /// Path or URL of the document.
    pub path: String,
    /// The summary generated from its final state.
    pub summary: String,
    /// Whether it came from the cache.
    pub cached: bool,
}

/// A summary of one or more documents.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The overall summary (for one document, its own).
    pub summary: String,
    /// Whether the overall summary came from the cache.
    pub summary_cached: bool,
    /// Every document's summary, by path.
    pub documents: Vec<DocumentSummary>,
    /// Why the overall generation ended (`cached` when it was not generated).
    pub finish: &'static str,
    /// Timings: `retrieve_ms` is finding the documents, `read_ms` the documents' summaries
    /// (restore, read, generate or cache), the rest the overall summary.
    pub timings: Timings,
}

#[derive(Serialize, Deserialize)]
struct Cached {
    path: String,
    summary: String,
}

/// A document's key lines: its definitions and headings (top level first), without a model.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentOutline {
    /// Path or URL.
    pub path: String,
    /// Lines in the document.
    pub lines: u64,
    /// The key lines, in document order.
    pub key_lines: Vec<KeyLine>,
}

/// One key line of a [`DocumentOutline`].
#[derive(Debug, Clone, Serialize)]
pub struct KeyLine {
    /// 1-based line.
    pub line: u64,
    /// `function`, `class`, `section`, …
    pub kind: String,
    /// Qualified name.
    pub name: String,
    /// The line, exactly as stored.
    pub text: String,
}

/// Key lines listed per document in an outline.
pub const OUTLINE_LINES: usize = 12;

impl Library<'_> {
    /// The stored documents a target names, by path.
    fn documents_under(&self, target: &SummaryTarget) -> Result<Vec<rwkv_store::DocumentRecord>> {
        let mut docs: Vec<_> = self
            .store()
            .documents()?
            .into_iter()
            .filter(|d| match target {
                SummaryTarget::All => true,
                SummaryTarget::Path(p) => {
                    let p = p.trim_start_matches("./").trim_end_matches('/');
                    p.is_empty()
                        || d.source == p
                        || d.source.starts_with(&format!("{p}/"))
                        || d.source.ends_with(&format!("/{p}"))
                        || d.source.contains(&format!("/{p}/"))
                }
            })
            .collect();
        docs.sort_by(|a, b| a.source.cmp(&b.source));
        Ok(docs)
    }

    /// The key lines of every document a target names (its definitions and headings from the
    /// symbol index, outermost first, at most [`OUTLINE_LINES`] each, shown in document order):
    /// what a summary says when no model can write one. `None` when no document matches.
    pub fn outline(&self, target: &SummaryTarget) -> Result<Option<Vec<DocumentOutline>>> {
        let docs = self.documents_under(target)?;
        if docs.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(docs.len());
        for d in &docs {
            let text = self.text_of(&d.id)?.unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let mut heads: Vec<rwkv_index::Hit> = self
                .index()
                .units_of(&d.id)?
                .into_iter()
                .filter(|h| h.head && h.name_line >= 1 && (h.name_line as usize) <= lines.len())
                .collect();
            // Outermost first (fewest scope levels), then in order; keep the first few.
            heads.sort_by_key(|h| {
                (
                    if h.scope.is_empty() {
                        0
                    } else {
                        1 + h.scope.matches('.').count()
                    },
                    h.name_line,
                )
            });
            heads.truncate(OUTLINE_LINES);
            heads.sort_by_key(|h| h.name_line);
            out.push(DocumentOutline {
                path: d.source.clone(),
                lines: lines.len() as u64,
                key_lines: heads
                    .iter()
                    .map(|h| KeyLine {
                        line: h.name_line,
                        kind: h.kind.clone(),
                        name: h.qualified_name(),
                        text: lines[h.name_line as usize - 1].to_string(),
                    })
                    .collect(),
            });
        }
        Ok(Some(out))
    }

    /// Summarize a document, a folder or the whole store: every matching document's summary
    /// from its own final state (`on_document(done, total, summary)` after each), then the
    /// overall one, streamed to `on_text`. `None` when no stored document matches.
    pub fn summarize(
        &self,
        target: &SummaryTarget,
        opts: &AskOptions,
        on_document: &mut dyn FnMut(usize, usize, &DocumentSummary),
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Option<Summary>> {
        let t0 = Instant::now();
        let docs = self.documents_under(target)?;
        if docs.is_empty() {
            return Ok(None);
        }
        let mut timings = Timings {
            retrieve_ms: ms(t0),
            ..Default::default()
        };
        let settings = self.settings_key(opts);
        let t1 = Instant::now();
        let mut documents = Vec::with_capacity(docs.len());
        let mut keys = Vec::with_capacity(docs.len());
        for (i, d) in docs.iter().enumerate() {
            let key = cache_key(&[&settings, "document", &d.content_hash]);
            let (summary, cached) = match self.cache_get(&key) {
                Some(c) => (c.summary, true),
                None => {
                    let text = self.document_summary(&d.id, &d.source, opts)?;
                    self.cache_put(&key, &d.source, &text);
                    (text, false)
                }
            };
            let s = DocumentSummary {
                path: d.source.clone(),
                summary,
                cached,
            };
            on_document(i + 1, docs.len(), &s);
            documents.push(s);
            keys.push(key);
        }
        timings.read_ms = ms(t1);
        if documents.len() == 1 {
            let s = &documents[0];
            let _ = on_text(&s.summary);
            return Ok(Some(Summary {
                summary: s.summary.clone(),
                summary_cached: s.cached,
                finish: "single_document",
                documents,
                timings,
            }));
        }
        let mut parts = vec![settings.as_str(), "overall"];
        parts.extend(keys.iter().map(String::as_str));
        let key = cache_key(&parts);
        if let Some(c) = self.cache_get(&key) {
            timings.first_token_ms = ms(t0);
            let _ = on_text(&c.summary);
            return Ok(Some(Summary {
                summary: c.summary,
                summary_cached: true,
                finish: "cached",
                documents,
                timings,
            }));
        }
        // Reduce: read the documents' summaries, in order, with their paths, from a fresh state.
        let mut context = String::from("Summaries of the files of one collection, one per file:\n");
        for s in &documents {
            context.push_str(&format!("\nFile: {}\n{}\n", s.path, s.summary.trim()));
        }
        let prompt = opts.template.prompt(&format!(
            "Summarize this collection of {} files in a few sentences.",
            documents.len()
        ));
        context.push_str(&format!("\n{prompt}"));
        let mut state = self.model().new_state();
        let logits = read(self.model(), self.tokenizer().as_ref(), &mut state, &context)?;
        let g = self.generate_from(&mut state, logits, opts, opts.max_tokens, on_text)?;
        timings.first_token_ms = ms(t0) - g.generate_ms + g.first_token_ms;
        timings.generate_ms = g.generate_ms;
        timings.tokens = g.tokens;
        timings.tokens_per_second = g.tokens as f64 / (g.generate_ms / 1e3).max(1e-9);
        if g.finish != "cancelled" {
            self.cache_put(&key, "", &g.text);
        }
        Ok(Some(Summary {
            summary: g.text,
            summary_cached: false,
            finish: g.finish,
            documents,
            timings,
        }))
    }

    /// One document's summary, generated from its final saved state.
    fn document_summary(&self, doc_id: &str, path: &str, opts: &AskOptions) -> Result<String> {
        let cps = self.store().checkpoints_of(doc_id)?;
        let prompt = opts
            .template
            .prompt(&format!("Summarize the file {path} in one or two sentences."));
        // A document indexed but not folded (`--index-only`) is folded here, in memory.
        let mut state = match cps.last() {
            Some(last) => self.restore_key(&last.key)?,
            None => self.fold_on_demand(doc_id, path, usize::MAX)?.state,
        };
        let logits = read(
            self.model(),
            self.tokenizer().as_ref(),
            &mut state,
            &format!("\n\n{prompt}"),
        )?;
        let max = opts.max_tokens.min(DOCUMENT_SUMMARY_TOKENS);
        let g = self.generate_from(&mut state, logits, opts, max, &mut |_| ControlFlow::Continue(()))?;
        Ok(g.text.trim().to_string())
    }

    /// What every summary of this run depends on besides its input: the rule, the model (its
    /// fingerprint and fold arithmetic), the tokenizer, the template, the token limits and the
    /// sampler.
    fn settings_key(&self, opts: &AskOptions) -> String {
        format!(
            "{SUMMARY_RULE}\0{}\0{:?}\0{}\0{}\0{}\0{}\0{:?}",
            self.model().fingerprint(),
            self.model().fold_precision(),
            self.tokenizer().id(),
            opts.template.prompt("{q}"),
            opts.template.stop(),
            opts.max_tokens,
            opts.sampler,
        )
    }

    fn cache_path(&self, key: &str) -> PathBuf {
        rwkv_store::StoreDir::new(self.store().dir())
            .summaries()
            .join(format!("{key}.json"))
    }

    fn cache_get(&self, key: &str) -> Option<Cached> {
        let bytes = std::fs::read(self.cache_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Best effort: a read-only store still summarizes, it only cannot remember.
    fn cache_put(&self, key: &str, path: &str, summary: &str) {
        let file = self.cache_path(key);
        let Some(dir) = file.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let entry = Cached {
            path: path.to_string(),
            summary: summary.to_string(),
        };
        let Ok(bytes) = serde_json::to_vec(&entry) else { return };
        // One temporary file per call (a server summarizes on several threads).
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{key}.{}.{n}.tmp", std::process::id()));
        if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, &file).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// The cache key of `parts`: blake3 over them, each followed by a NUL.
fn cache_key(parts: &[&str]) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(&[0]);
    }
    h.finalize().to_hex()[..40].to_string()
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
