//! The index's retrieval units of a stored document, and rebuilding the index from the store.

use super::*;

/// Longest retrieval unit, in lines and bytes: a longer definition is indexed in pieces.
pub const UNIT_MAX_LINES: usize = 60;

/// See [`UNIT_MAX_LINES`].
pub const UNIT_MAX_BYTES: usize = 4096;

/// The retrieval units of a stored document ([`rwkv_symbols::units`]: definitions with their
/// bodies, sections, the text between them), each pointing at the checkpoint at or before its
/// start and carrying the names it refers to.
pub fn units_from(doc: &DocumentRecord, cps: &[CheckpointRecord], text: &str) -> Vec<Unit> {
    let syms = rwkv_symbols::extract(&doc.source, &doc.kind, text, &rwkv_symbols::Options::default());
    if let Some(note) = &syms.note {
        tracing::debug!(target: "rwkv::index", path = %doc.source, note = %note, "symbols by fallback");
    }
    let title_at = |off: u64| {
        doc.parts
            .iter()
            .rev()
            .find(|p| p.byte_offset <= off)
            .map(|p| p.title.clone())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| doc.title.clone())
    };
    // The checkpoints in text order (a document's checkpoints are, by seq).
    let mut cps: Vec<&CheckpointRecord> = cps.iter().collect();
    cps.sort_by_key(|c| c.seq);
    let mut refs = syms.references.iter().peekable();
    rwkv_symbols::units(text, &syms, UNIT_MAX_LINES, UNIT_MAX_BYTES)
        .into_iter()
        .enumerate()
        .map(|(seq, u)| {
            let cp = cps.iter().take_while(|c| c.byte_offset as usize <= u.byte_start).last();
            let sym = u.symbol.and_then(|i| syms.definitions.get(i));
            // References are sorted by line, units too: walk them once.
            let mut names: Vec<String> = Vec::new();
            while let Some(r) = refs.peek() {
                if r.line > u.line_end {
                    break;
                }
                if r.line >= u.line_start && !names.contains(&r.name) {
                    names.push(r.name.clone());
                }
                refs.next();
            }
            Unit {
                doc_id: doc.id.clone(),
                path: doc.source.clone(),
                title: title_at(u.byte_start as u64),
                text: text.get(u.byte_start..u.byte_end).unwrap_or_default().to_string(),
                line_start: u64::from(u.line_start),
                line_end: u64::from(u.line_end),
                byte_start: u.byte_start as u64,
                byte_end: u.byte_end as u64,
                checkpoint: cp.map(|c| c.key.to_hex()),
                checkpoint_offset: cp.map_or(0, |c| c.byte_offset),
                seq: seq as u64,
                kind: sym.map_or("text", |s| s.kind.as_str()).to_string(),
                name: sym.map(|s| s.name.clone()).unwrap_or_default(),
                scope: sym.and_then(|s| s.scope.clone()).unwrap_or_default(),
                name_line: sym.map_or(0, |s| u64::from(s.name_line)),
                head: u.head,
                refs: names,
                doc_bytes: text.len() as u64,
                also: syms
                    .definitions
                    .iter()
                    .enumerate()
                    .filter(|&(i, d)| {
                        Some(i) != u.symbol
                            && d.line_start >= u.line_start
                            && d.line_end <= u.line_end
                            && d.name_line >= u.line_start
                    })
                    .take(64)
                    .map(|(_, d)| (d.name.clone(), u64::from(d.name_line)))
                    .collect(),
                declares: syms
                    .declarations
                    .iter()
                    .filter(|d| d.line >= u.line_start && d.line <= u.line_end)
                    .take(64)
                    .map(|d| (d.name.clone(), d.comment.clone()))
                    .collect(),
                doc: match sym.map(|s| s.kind) {
                    Some(rwkv_symbols::SymbolKind::Section) => String::new(),
                    _ if syms.method == rwkv_symbols::Method::Headings => String::new(),
                    _ => rwkv_symbols::comments(text.get(u.byte_start..u.byte_end).unwrap_or_default()),
                },
            }
        })
        .collect()
}

pub(super) fn units_of(store: &Store, rec: &DocumentRecord, text: &str) -> Result<Vec<Unit>> {
    Ok(units_from(rec, &store.checkpoints_of(&rec.id)?, text))
}

/// Refill the index from the store and the stored texts.
pub fn reindex_all(store: &Store, texts: &TextStore, index: &mut Index) -> Result<u64> {
    let mut n = 0;
    for rec in store.documents()? {
        if let Some(text) = texts.get(&rec.content_hash)? {
            let units = units_of(store, &rec, &text)?;
            index.add_document_units(&rec.id, units)?;
            n += 1;
        }
    }
    index.commit()?;
    Ok(n)
}
