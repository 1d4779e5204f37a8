//! Store upkeep: deleting unreferenced blobs, rebuilding a damaged manifest, merging shards.

use super::*;

/// Collect unreferenced blobs and texts.
pub fn gc(store_dir: &Path, ident: StoreIdentity) -> Result<BTreeMap<&'static str, u64>> {
    let mut store = Store::open(store_dir, ident)?;
    let report = store.gc()?;
    let keep: BTreeSet<String> = store.documents()?.into_iter().map(|d| d.content_hash).collect();
    let (texts, text_bytes) = TextStore::new(store_dir).gc(&keep)?;
    Ok(BTreeMap::from([
        ("blobs_removed", report.blobs_removed),
        ("bytes_removed", report.bytes_removed),
        ("temp_removed", report.temp_removed),
        ("blobs_kept", report.blobs_kept),
        ("texts_removed", texts),
        ("text_bytes_removed", text_bytes),
    ]))
}

/// Rebuild a damaged manifest from the blobs, then the index from the store.
pub fn repair(store_dir: &Path, ident: StoreIdentity) -> Result<rwkv_store::RebuildReport> {
    let (store, report) = Store::rebuild_manifest(store_dir, ident)?;
    let texts = TextStore::new(store_dir);
    let mut index = Index::rebuild(StoreDir::new(store_dir).index(), std::iter::empty())?;
    reindex_all(&store, &texts, &mut index)?;
    Ok(report)
}

/// Merge other stores (same model and tokenizer) into `store_dir`, with their texts, and
/// rebuild the index. Before `store_dir` is touched, every other store must open with `ident`
/// and, when they are shard stores (`shard.json`), be every shard of one run's corpus,
/// complete and made with the same settings ([`rwkv_store::check_shard_set`]).
pub fn merge(store_dir: &Path, ident: StoreIdentity, others: &[PathBuf]) -> Result<Vec<rwkv_store::MergeReport>> {
    // Everything is checked before the target is touched: each store opens (it exists, was made
    // with this identity), and shard stores are the whole of one corpus made alike.
    let mut opened = Vec::with_capacity(others.len());
    let mut records = Vec::with_capacity(others.len());
    for o in others {
        if o.canonicalize()
            .ok()
            .is_some_and(|c| store_dir.canonicalize().ok() == Some(c))
        {
            return Err(Error::Usage(format!(
                "{}: cannot merge a store into itself",
                o.display()
            )));
        }
        opened.push(Store::open_read_only(o, ident.clone())?);
        records.push((o.clone(), ShardRecord::read(o)?));
    }
    rwkv_store::check_shard_set(&records)?;
    let mut store = Store::open(store_dir, ident.clone())?;
    // Shards compressed their blobs: a new merged store does too, so it holds the same bytes.
    let zstd = records.iter().find_map(|(_, r)| {
        r.as_ref()
            .and_then(|r| r.settings.get("compression"))
            .and_then(|c| c.strip_prefix("zstd-"))
            .and_then(|l| l.parse::<i32>().ok())
    });
    if let Some(level) = zstd
        && store.compression() == Compression::None
        && store.stats()?.documents == 0
    {
        store.set_compression(Compression::Zstd(level))?;
    }
    let texts = TextStore::new(store_dir);
    let mut reports = Vec::new();
    for (o, other) in others.iter().zip(opened) {
        let other_texts = TextStore::new(o);
        for d in other.documents()? {
            texts.copy_from(&other_texts, &d.content_hash)?;
        }
        reports.push(store.merge_from(&other)?);
    }
    let mut index = Index::rebuild(StoreDir::new(store_dir).index(), std::iter::empty())?;
    reindex_all(&store, &texts, &mut index)?;
    Ok(reports)
}
