//! Folding documents that are indexed but not folded, from their stored texts: what `rwkv-ask`
//! commits after folding one on demand ([`fold_stored`]) and what an ingest folds first because
//! it was asked about ([`fold_asked`]).

use super::*;

/// Folds documents a store holds indexed but not folded (`rwkv-ingest --index-only`) from
/// their stored texts, exactly as an ingest folds them (same plan, spacing for the store's
/// state precision, blobs and records), and commits them and their units: what `rwkv-ask` does
/// after answering from a document it folded on demand, so the next question on it resumes a
/// checkpoint. `store` is the identity the store was made with. Documents already folded,
/// unknown, or whose text is not stored are left alone. Returns how many were folded. Fails
/// with the store's or the index's lock error while another process (an ingest) writes it.
/// `progress` hears of each document's start and tokens as an ingest's does.
pub fn fold_stored(
    store_dir: &Path,
    store: StoreIdentity,
    model: &Model,
    tokenizer: Arc<dyn Tokenizer>,
    doc_ids: &[String],
    progress: &dyn Progress,
) -> Result<u64> {
    let state_precision = match rwkv_store::FoldKind::parse(&store.model_fingerprint) {
        Some((_, k)) if !k.state_bf16 => StatePrecision::F32,
        _ => StatePrecision::Bf16,
    };
    let cfg = IngestConfig {
        store_dir: store_dir.to_path_buf(),
        state_precision,
        jobs: 1,
        lanes: 1,
        ..IngestConfig::default()
    };
    // States are committed only when this model folds them as the store's were folded (its
    // weights and fold precision): otherwise the store refuses it, naming both.
    let ours = rwkv_reader::store_identity(model, model.fold_precision(), state_precision, tokenizer.as_ref());
    let opened = Store::open(store_dir, ours)?;
    let (index, _) = Index::open_or_create(StoreDir::new(store_dir).index())?;
    let shared = Shared {
        cfg: &cfg,
        model,
        reader: ReaderBuilder::new(model, tokenizer)
            .checkpoint_every(checkpoint_every(&cfg, model))
            .build(),
        store: opened,
        texts: TextStore::new(store_dir),
        index: Mutex::new(index),
        indexed: BTreeSet::new(),
        index_phase: AtomicBool::new(false),
        asked_from: Mutex::new(0),
        folded_early: Mutex::new(BTreeSet::new()),
        progress,
        seen: Mutex::new(Vec::new()),
        skips: Mutex::new(Vec::new()),
        counts: Counts::default(),
    };
    let folded = fold_ids(&shared, doc_ids)?;
    commit_index(&shared)?;
    Ok(folded)
}

/// Folds the documents `ids` names that the store holds indexed but not folded, from their
/// stored texts, as the fold pass would; returns how many.
fn fold_ids(shared: &Shared<'_>, doc_ids: &[String]) -> Result<u64> {
    let mut folded = 0;
    for id in doc_ids {
        let Some(rec) = shared.store.document(id)? else {
            continue;
        };
        if rec.is_folded() {
            continue;
        }
        let Some(text) = shared.texts.get(&rec.content_hash)? else {
            continue;
        };
        let (Some(doc_id), Some(kind)) = (DocId::from_hex(&rec.id), DocKind::parse(&rec.kind)) else {
            continue;
        };
        let parts = rec
            .parts
            .iter()
            .map(|p| (p.title.clone(), p.byte_offset as usize))
            .collect();
        let Some(doc) = Document::from_stored(doc_id, kind, &rec.source, &rec.title, text, parts) else {
            continue;
        };
        if doc.hash.to_string() != rec.content_hash || doc.location() != rec.source {
            continue;
        }
        fold_document(shared, &doc)?;
        folded += 1;
    }
    Ok(folded)
}

/// Folds what `rwkv-ask` queued while this run held the store ([`StoreDir::push_asked`])
/// ahead of the sources' order (no-op in the index phase).
pub(super) fn fold_asked(shared: &Shared<'_>) -> Result<()> {
    if shared.index_phase.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut from = shared.asked_from.lock().map_err(|_| poisoned())?;
    let dir = StoreDir::new(&shared.cfg.store_dir);
    let (ids, end) = dir.read_asked(*from).map_err(|e| Error::Io {
        path: dir.asked(),
        source: e,
    })?;
    *from = end;
    if ids.is_empty() {
        return Ok(());
    }
    let unfolded: Vec<String> = ids
        .into_iter()
        .filter(|id| matches!(shared.store.document(id), Ok(Some(r)) if !r.is_folded()))
        .collect();
    fold_ids(shared, &unfolded)?;
    shared.folded_early.lock().map_err(|_| poisoned())?.extend(unfolded);
    Ok(())
}
