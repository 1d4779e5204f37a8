//! What the manifest records, and the copy of it every state blob carries in its safetensors
//! header, so that a lost manifest can be rebuilt from the blobs alone.
//!
//! Every blob's header names its checkpoint and document (the `ckpt_*` and `doc_id`,
//! `doc_source`, `doc_kind`, `doc_title` keys). Only the blob of a document's *final* checkpoint
//! also carries the document-level fields (`doc_content_hash`, `doc_byte_len`, ...): those change
//! whenever the document does, and keeping them out of the other blobs means an unchanged prefix
//! of an edited document keeps byte-identical blobs (a no-op write). The final blob is new
//! whenever the content is (its key chains over every span), so nothing is lost.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::key::Key;

/// What a store is for: states of one model, tokenizer and state-file format. A store refuses to
/// open with another identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreIdentity {
    /// The model fingerprint (`rwkv_model::Model::fingerprint`).
    pub model_fingerprint: String,
    /// The tokenizer id.
    pub tokenizer: String,
    /// The state-file format version (`rwkv_model::STATE_FORMAT_VERSION`).
    pub format_version: u32,
}

/// How a store's states were made beyond the model itself. Each departure from the exact f32
/// fold of the checkpoint's own weights stored as f32 changes the states (by rounding), so it is
/// part of the store's fingerprint: `{model}` alone, or followed by `+weights-{w}` (the weights
/// were rounded on load), `+fold-bf16` or `+fold-int8` (the bf16 or int8 fold), `+state-bf16`
/// (bf16 blobs), in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FoldKind<'a> {
    /// The precision the weights were rounded to on load (`bf16`, `int8`), if they were.
    pub weights_rounded: Option<&'a str>,
    /// The fold ran in bf16 arithmetic.
    pub fold_bf16: bool,
    /// The fold ran in int8 arithmetic.
    pub fold_int8: bool,
    /// The blobs hold bf16 states.
    pub state_bf16: bool,
}

impl<'a> FoldKind<'a> {
    /// The fingerprint of states of model `model_fingerprint` made this way.
    pub fn fingerprint(&self, model_fingerprint: &str) -> String {
        let mut f = model_fingerprint.to_string();
        if let Some(w) = self.weights_rounded {
            f.push_str("+weights-");
            f.push_str(w);
        }
        if self.fold_bf16 {
            f.push_str("+fold-bf16");
        }
        if self.fold_int8 {
            f.push_str("+fold-int8");
        }
        if self.state_bf16 {
            f.push_str("+state-bf16");
        }
        f
    }

    /// Split a store fingerprint into the model's fingerprint and how its states were made;
    /// `None` when a suffix is not one this build writes.
    pub fn parse(fingerprint: &'a str) -> Option<(&'a str, FoldKind<'a>)> {
        let mut parts = fingerprint.split('+');
        let model = parts.next()?;
        let mut kind = FoldKind::default();
        for p in parts {
            match p {
                "fold-bf16" => kind.fold_bf16 = true,
                "fold-int8" => kind.fold_int8 = true,
                "state-bf16" => kind.state_bf16 = true,
                w => kind.weights_rounded = Some(w.strip_prefix("weights-")?),
            }
        }
        Some((model, kind))
    }
}

impl StoreIdentity {
    /// The identity of a store of states of model `model_fingerprint` made as `kind`, tokenized
    /// by `tokenizer`, in state-file format `format_version`.
    pub fn for_fold(model_fingerprint: &str, kind: FoldKind<'_>, tokenizer: &str, format_version: u32) -> Self {
        StoreIdentity {
            model_fingerprint: kind.fingerprint(model_fingerprint),
            tokenizer: tokenizer.to_string(),
            format_version,
        }
    }
}

/// How new blobs are written. Existing blobs keep the form they were written in; both are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Compression {
    /// Plain safetensors, `<rest>.st`.
    #[default]
    None,
    /// zstd at this level (1..=22; 3 is zstd's default), `<rest>.st.zst`.
    Zstd(i32),
}

/// A boundary inside a document: chapter, page section, file part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Part {
    /// The part's title (empty if it has none).
    pub title: String,
    /// Byte offset of the part's start in the document.
    pub byte_offset: u64,
    /// 1-based line of the part's start.
    pub line: u64,
}

/// A document as the manifest knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DocumentRecord {
    /// The document id (the pipeline's choice, e.g. the path relative to the input root).
    pub id: String,
    /// Where it came from: a path or a URL.
    pub source: String,
    /// What kind of document: "code", "book", "web", ... (free-form).
    pub kind: String,
    /// Title (empty if none).
    pub title: String,
    /// blake3 of the document's bytes, hex; the pipeline compares it to skip unchanged inputs.
    pub content_hash: String,
    /// Length in bytes.
    pub byte_len: u64,
    /// Lines.
    pub line_count: u64,
    /// Tokens folded (the final checkpoint's `token_offset`).
    pub token_count: u64,
    /// Part boundaries, in order.
    pub parts: Vec<Part>,
    /// The document's checkpoints in order (`seq` 0, 1, ...). Set by `commit_document`.
    pub checkpoints: Vec<Key>,
    /// When this version was committed, milliseconds since the Unix epoch. Set by
    /// `commit_document`; decides which version wins in `merge_from` and `rebuild_manifest`.
    pub committed_at_ms: u64,
}

impl DocumentRecord {
    /// Whether the document's states are in the store. A folded document has at least its
    /// first checkpoint; one committed without any (`rwkv-ingest --index-only`) is indexed
    /// but not folded: questions about it re-read its text from the start state.
    pub fn is_folded(&self) -> bool {
        !self.checkpoints.is_empty()
    }
}

/// Where a blob is and what it must hash to. Returned by `put_blob`, stored in each
/// [`CheckpointRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BlobInfo {
    /// blake3 of the stored bytes (after compression, if any), hex.
    pub checksum: String,
    /// Stored size in bytes.
    pub size: u64,
    /// Whether the stored bytes are zstd-compressed (`.st.zst`).
    pub compressed: bool,
}

/// A checkpoint as the manifest knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CheckpointRecord {
    /// The key ([`crate::checkpoint_key`]).
    pub key: Key,
    /// The document it belongs to.
    pub doc_id: String,
    /// Position in the document's checkpoint list, from 0.
    pub seq: u32,
    /// Tokens of the document folded into the state (the preamble included).
    pub token_offset: u64,
    /// Byte offset in the document where the state stands.
    pub byte_offset: u64,
    /// 1-based line at `byte_offset`.
    pub line: u64,
    /// The previous checkpoint (`None` for a document's first).
    pub parent: Option<Key>,
    /// Whether this is the document's last checkpoint (its end). Exactly the last checkpoint
    /// of a committed document has it; its blob carries the document-level metadata.
    pub is_final: bool,
    /// The blob, as `put_blob` reported it. [`blob_metadata`] ignores it (the metadata goes
    /// into the blob, so it is made before the blob exists).
    pub blob: BlobInfo,
}

/// The safetensors metadata keys the store reads from blobs (see [`blob_metadata`]).
pub mod meta_keys {
    /// Marks a blob written for this store; value [`super::BLOB_META_VERSION`].
    pub const STORE_META: &str = "store_meta";
    /// The checkpoint key, hex.
    pub const KEY: &str = "ckpt_key";
    /// The parent key, hex; absent for a document's first checkpoint.
    pub const PARENT: &str = "ckpt_parent";
    /// `seq`, decimal.
    pub const SEQ: &str = "ckpt_seq";
    /// `token_offset`, decimal.
    pub const TOKEN_OFFSET: &str = "ckpt_token_offset";
    /// `byte_offset`, decimal.
    pub const BYTE_OFFSET: &str = "ckpt_byte_offset";
    /// `line`, decimal.
    pub const LINE: &str = "ckpt_line";
    /// `"1"` on a document's final checkpoint, else `"0"`.
    pub const FINAL: &str = "ckpt_final";
    /// The document id.
    pub const DOC_ID: &str = "doc_id";
    /// The document's path or URL.
    pub const DOC_SOURCE: &str = "doc_source";
    /// The document kind.
    pub const DOC_KIND: &str = "doc_kind";
    /// The document title.
    pub const DOC_TITLE: &str = "doc_title";
    /// Final blob only: content hash.
    pub const DOC_CONTENT_HASH: &str = "doc_content_hash";
    /// Final blob only: byte length.
    pub const DOC_BYTE_LEN: &str = "doc_byte_len";
    /// Final blob only: line count.
    pub const DOC_LINE_COUNT: &str = "doc_line_count";
    /// Final blob only: token count.
    pub const DOC_TOKEN_COUNT: &str = "doc_token_count";
    /// Final blob only: parts, as JSON `[{"title":..,"byte_offset":..,"line":..}]`.
    pub const DOC_PARTS: &str = "doc_parts";
    /// The model fingerprint, as `rwkv-model` writes it into every state file (read, not written).
    pub const MODEL: &str = "model";
    /// The store's fingerprint, written by the caller when it is not the model's own (a store
    /// of bf16-folded states); read in preference to [`MODEL`].
    pub const STORE_MODEL: &str = "store_model";
}

/// The value of [`meta_keys::STORE_META`] this build writes.
pub const BLOB_META_VERSION: &str = "1";

/// The safetensors header metadata the writer must put into the blob of `ckpt` (merged with the
/// model crate's own keys: `format`, `model`, `tokenizer`, `tokens`, ...; none collide).
/// `ckpt.blob` is ignored. For the final checkpoint, `doc` must be complete (content hash,
/// lengths, token count, parts); for the others only `doc.id`, `source`, `kind` and `title` are
/// used.
pub fn blob_metadata(ckpt: &CheckpointRecord, doc: &DocumentRecord) -> BTreeMap<String, String> {
    use meta_keys::*;
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), v);
    };
    put(STORE_META, BLOB_META_VERSION.to_string());
    put(KEY, ckpt.key.to_hex());
    if let Some(p) = &ckpt.parent {
        put(PARENT, p.to_hex());
    }
    put(SEQ, ckpt.seq.to_string());
    put(TOKEN_OFFSET, ckpt.token_offset.to_string());
    put(BYTE_OFFSET, ckpt.byte_offset.to_string());
    put(LINE, ckpt.line.to_string());
    put(FINAL, if ckpt.is_final { "1" } else { "0" }.to_string());
    put(DOC_ID, doc.id.clone());
    put(DOC_SOURCE, doc.source.clone());
    put(DOC_KIND, doc.kind.clone());
    put(DOC_TITLE, doc.title.clone());
    if ckpt.is_final {
        put(DOC_CONTENT_HASH, doc.content_hash.clone());
        put(DOC_BYTE_LEN, doc.byte_len.to_string());
        put(DOC_LINE_COUNT, doc.line_count.to_string());
        put(DOC_TOKEN_COUNT, doc.token_count.to_string());
        // Serializing plain structs of strings and integers does not fail.
        put(DOC_PARTS, serde_json::to_string(&doc.parts).expect("parts serialize"));
    }
    m
}

/// What a blob's header says about its checkpoint and document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMetadata {
    /// The checkpoint (its `blob` field is left default).
    pub checkpoint: CheckpointRecord,
    /// The document: complete for a final checkpoint's blob; otherwise only `id`, `source`,
    /// `kind` and `title` are set.
    pub document: DocumentRecord,
    /// The store fingerprint the blob names (`store_model`), else the model fingerprint the
    /// model crate wrote (`model`), if present.
    pub model_fingerprint: Option<String>,
}

/// Read the store's metadata from the header of safetensors bytes (uncompressed). `path` names
/// the source in errors.
pub fn parse_blob_metadata(path: &Path, bytes: &[u8]) -> Result<BlobMetadata> {
    use meta_keys::*;
    let bad = |reason: String| Error::BadBlob {
        path: path.to_path_buf(),
        reason,
    };
    let (_, header) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let md: HashMap<String, String> = header.metadata().clone().unwrap_or_default();
    if md.get(STORE_META).map(String::as_str) != Some(BLOB_META_VERSION) {
        return Err(bad(format!("no store metadata (`{STORE_META}` = {BLOB_META_VERSION})")));
    }
    let get = |k: &str| md.get(k).ok_or_else(|| bad(format!("metadata `{k}` missing")));
    let num = |k: &str| -> Result<u64> {
        get(k)?
            .parse()
            .map_err(|_| bad(format!("metadata `{k}` is not a number")))
    };
    let key_of =
        |k: &str| -> Result<Key> { Key::from_hex(get(k)?).ok_or_else(|| bad(format!("metadata `{k}` is not a key"))) };
    let is_final = get(FINAL)? == "1";
    let checkpoint = CheckpointRecord {
        key: key_of(KEY)?,
        doc_id: get(DOC_ID)?.clone(),
        seq: u32::try_from(num(SEQ)?).map_err(|_| bad(format!("metadata `{SEQ}` out of range")))?,
        token_offset: num(TOKEN_OFFSET)?,
        byte_offset: num(BYTE_OFFSET)?,
        line: num(LINE)?,
        parent: if md.contains_key(PARENT) {
            Some(key_of(PARENT)?)
        } else {
            None
        },
        is_final,
        blob: BlobInfo::default(),
    };
    let mut document = DocumentRecord {
        id: checkpoint.doc_id.clone(),
        source: get(DOC_SOURCE)?.clone(),
        kind: get(DOC_KIND)?.clone(),
        title: get(DOC_TITLE)?.clone(),
        ..DocumentRecord::default()
    };
    if is_final {
        document.content_hash = get(DOC_CONTENT_HASH)?.clone();
        document.byte_len = num(DOC_BYTE_LEN)?;
        document.line_count = num(DOC_LINE_COUNT)?;
        document.token_count = num(DOC_TOKEN_COUNT)?;
        document.parts =
            serde_json::from_str(get(DOC_PARTS)?).map_err(|e| bad(format!("metadata `{DOC_PARTS}`: {e}")))?;
    }
    Ok(BlobMetadata {
        checkpoint,
        document,
        model_fingerprint: md.get(STORE_MODEL).or_else(|| md.get(MODEL)).cloned(),
    })
}

#[cfg(test)]
mod fold_kind_tests {
    use super::FoldKind;

    #[test]
    fn a_fingerprint_says_how_its_states_were_made_and_parses_back() {
        let cases = [
            (FoldKind::default(), "m"),
            (
                FoldKind {
                    weights_rounded: Some("int8"),
                    fold_bf16: true,
                    fold_int8: false,
                    state_bf16: true,
                },
                "m+weights-int8+fold-bf16+state-bf16",
            ),
            (
                FoldKind {
                    fold_int8: true,
                    ..FoldKind::default()
                },
                "m+fold-int8",
            ),
            (
                FoldKind {
                    state_bf16: true,
                    ..FoldKind::default()
                },
                "m+state-bf16",
            ),
        ];
        for (kind, fp) in cases {
            assert_eq!(kind.fingerprint("m"), fp);
            assert_eq!(FoldKind::parse(fp), Some(("m", kind)));
        }
        assert_eq!(FoldKind::parse("m+future-thing"), None);
    }
}
