//! Folds documents into RWKV state and emits checkpoints.
//!
//! A document is read from a start state (the zero state after a short preamble naming the
//! document, such as `File: src/lib.rs`), and a [`Checkpoint`] — a copy of the state and where
//! in the document it was taken — is emitted at the start, at every part boundary (end of a file,
//! chapter or page section) and every `checkpoint_every` tokens inside long parts.
//!
//! The token plan of a document is deterministic: each part is tokenized on its own (so part
//! boundaries are token boundaries) and cut into pieces of at most `checkpoint_every` tokens.
//! Folding on from any checkpoint with the rest of the plan therefore gives the state of folding
//! the document whole (to float rounding), which is what makes stored checkpoints resumable.
#![deny(missing_docs)]

use std::ops::ControlFlow;
use std::sync::Arc;

use rwkv_model::state::STATE_FORMAT_VERSION;
use rwkv_model::tokenizer::Tokenizer;
use rwkv_model::{FoldPrecision, Lane, Logits, Model, State, StatePrecision};
use rwkv_store::{FoldKind, StoreIdentity, span_hash};

/// Errors of the reader.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model refused the tokens or the state.
    #[error("document {doc}: {source}")]
    Model {
        /// Document id.
        doc: String,
        /// The model error.
        #[source]
        source: rwkv_model::Error,
    },
    /// A resume point does not fall on a checkpoint of this document's plan.
    #[error("document {doc}: no checkpoint at byte {byte_offset} / token {token_offset} (document changed?)")]
    NoSuchCheckpoint {
        /// Document id.
        doc: String,
        /// Requested byte offset.
        byte_offset: usize,
        /// Requested token offset.
        token_offset: u64,
    },
}

/// Result with the reader's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Default tokens between checkpoints inside a long part, and the least spacing
/// [`default_checkpoint_every`] gives.
pub const DEFAULT_CHECKPOINT_EVERY: usize = 4096;

/// Most bytes of stored state per folded token that the default spacing allows.
pub const STATE_BYTES_PER_TOKEN_BUDGET: usize = 512;

/// Default spacing always falls on a multiple of this many tokens.
pub const CHECKPOINT_EVERY_STEP: usize = 256;

/// The default tokens between checkpoints for a store whose checkpoints each hold
/// `stored_state_bytes` bytes of state: `max(4096, ceil(bytes / 512))` rounded up to a multiple
/// of 256, so interval checkpoints never cost more than 512 bytes of state per token folded.
/// Small models (up to 2 MB of state) keep 4096; a 1.5B RWKV-7 (12.98 MB of f32 state) gets
/// 25,344, its bf16 state (6.49 MB) 12,800.
pub fn default_checkpoint_every(stored_state_bytes: usize) -> usize {
    let every = stored_state_bytes
        .div_ceil(STATE_BYTES_PER_TOKEN_BUDGET)
        .max(DEFAULT_CHECKPOINT_EVERY);
    every.div_ceil(CHECKPOINT_EVERY_STEP) * CHECKPOINT_EVERY_STEP
}

/// A document to fold: its id, a name for the preamble, its text and where its parts start.
#[derive(Debug, Clone, Copy)]
pub struct DocInput<'a> {
    /// Stable document id.
    pub id: &'a str,
    /// Path or URL, named in the preamble.
    pub name: &'a str,
    /// The text.
    pub text: &'a str,
    /// Byte offsets where parts start (any order; 0 and out-of-range offsets are ignored;
    /// offsets inside a UTF-8 character are moved to the next character boundary).
    pub parts: &'a [usize],
}

/// Why a checkpoint was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// After the preamble, before the first byte of the document.
    Start,
    /// At the end of a part that is not the last.
    Part,
    /// Every `checkpoint_every` tokens inside a part.
    Interval,
    /// At the end of the document.
    End,
}

impl CheckpointKind {
    /// Short name (for manifests and JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointKind::Start => "start",
            CheckpointKind::Part => "part",
            CheckpointKind::Interval => "interval",
            CheckpointKind::End => "end",
        }
    }
}

/// A state taken inside a document.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Position in the document's checkpoint sequence (0 = start).
    pub seq: u32,
    /// Why it was taken.
    pub kind: CheckpointKind,
    /// Document tokens folded so far (the preamble not counted).
    pub token_offset: u64,
    /// Bytes of the document folded so far.
    pub byte_offset: usize,
    /// 1-based line of `byte_offset`.
    pub line: u32,
    /// [`rwkv_store::span_hash`] of the token ids folded since the previous checkpoint (the
    /// preamble's tokens for the start checkpoint).
    pub span_hash: [u8; 32],
    /// The state after those tokens.
    pub state: State,
    /// Whether this is the document's last checkpoint.
    pub is_last: bool,
}

/// One planned piece of a document: the tokens between two checkpoints.
#[derive(Debug, Clone)]
pub struct Piece {
    /// Byte range of the document it covers.
    pub bytes: std::ops::Range<usize>,
    /// Its tokens.
    pub tokens: Vec<u32>,
    /// The kind of checkpoint taken at its end.
    pub end_kind: CheckpointKind,
}

/// What folding a document did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoldSummary {
    /// Document tokens folded (preamble not counted).
    pub tokens: u64,
    /// Preamble tokens folded.
    pub preamble_tokens: u64,
    /// Checkpoints emitted.
    pub checkpoints: u32,
    /// Whether the sink stopped the fold early.
    pub stopped: bool,
}

/// Model chunks between two progress reports of [`Reader::fold_planned_with_progress`].
pub const PROGRESS_CHUNKS: usize = 4;

/// Builds a [`Reader`].
pub struct ReaderBuilder<'m> {
    model: &'m Model,
    tokenizer: Arc<dyn Tokenizer>,
    checkpoint_every: usize,
    preamble: Box<dyn Fn(&DocInput<'_>) -> String + Send + Sync>,
}

impl<'m> ReaderBuilder<'m> {
    /// A reader of `model` with `tokenizer`, checkpoints every [`DEFAULT_CHECKPOINT_EVERY`]
    /// tokens and the preamble `File: NAME\n\n`.
    pub fn new(model: &'m Model, tokenizer: Arc<dyn Tokenizer>) -> Self {
        ReaderBuilder {
            model,
            tokenizer,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            preamble: Box::new(|d| format!("File: {}\n\n", d.name)),
        }
    }

    /// Tokens between checkpoints inside a part (at least 1).
    pub fn checkpoint_every(mut self, n: usize) -> Self {
        self.checkpoint_every = n.max(1);
        self
    }

    /// The text folded before each document.
    pub fn preamble(mut self, f: impl Fn(&DocInput<'_>) -> String + Send + Sync + 'static) -> Self {
        self.preamble = Box::new(f);
        self
    }

    /// The reader.
    pub fn build(self) -> Reader<'m> {
        Reader {
            model: self.model,
            tokenizer: self.tokenizer,
            checkpoint_every: self.checkpoint_every,
            preamble: self.preamble,
        }
    }
}

/// Folds documents with one model; `&Reader` is shared across threads to fold documents in
/// parallel.
pub struct Reader<'m> {
    model: &'m Model,
    tokenizer: Arc<dyn Tokenizer>,
    checkpoint_every: usize,
    preamble: Box<dyn Fn(&DocInput<'_>) -> String + Send + Sync>,
}

/// Where a fold resumes: a checkpoint's position and state.
#[derive(Debug, Clone)]
pub struct ResumePoint {
    /// The checkpoint's sequence number.
    pub seq: u32,
    /// Its byte offset.
    pub byte_offset: usize,
    /// Its token offset.
    pub token_offset: u64,
    /// Its state.
    pub state: State,
}

impl<'m> Reader<'m> {
    /// The model.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Arc<dyn Tokenizer> {
        &self.tokenizer
    }

    /// Tokens between checkpoints.
    pub fn checkpoint_every(&self) -> usize {
        self.checkpoint_every
    }

    /// The preamble folded before `doc`.
    pub fn preamble_text(&self, doc: &DocInput<'_>) -> String {
        (self.preamble)(doc)
    }

    /// Cut a document into the pieces between its checkpoints (deterministic).
    pub fn plan(&self, doc: &DocInput<'_>) -> Vec<Piece> {
        let text = doc.text;
        let mut bounds: Vec<usize> = doc
            .parts
            .iter()
            .filter(|&&b| b > 0 && b < text.len())
            .map(|&b| {
                (b..=text.len())
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(text.len())
            })
            .collect();
        bounds.push(0);
        bounds.push(text.len());
        bounds.sort_unstable();
        bounds.dedup();
        let mut pieces = Vec::new();
        let n_parts = bounds.len().saturating_sub(1);
        for (pi, w) in bounds.windows(2).enumerate() {
            let (start, end) = (w[0], w[1]);
            let tokens = self.tokenizer.encode_bytes(&text.as_bytes()[start..end]);
            let last_part = pi + 1 == n_parts;
            let mut at = start;
            let n_chunks = tokens.len().div_ceil(self.checkpoint_every);
            for (ci, chunk) in tokens.chunks(self.checkpoint_every).enumerate() {
                let len: usize = chunk
                    .iter()
                    .map(|&t| self.tokenizer.token_bytes(t).map_or(0, <[u8]>::len))
                    .sum();
                let stop = (at + len).min(end);
                let end_kind = if ci + 1 < n_chunks {
                    CheckpointKind::Interval
                } else if last_part {
                    CheckpointKind::End
                } else {
                    CheckpointKind::Part
                };
                pieces.push(Piece {
                    bytes: at..stop,
                    tokens: chunk.to_vec(),
                    end_kind,
                });
                at = stop;
            }
        }
        pieces
    }

    /// The start state of `doc`: the zero state after the preamble, as checkpoint 0.
    pub fn start(&self, doc: &DocInput<'_>) -> Result<Checkpoint> {
        let pre = self.tokenizer.encode(&self.preamble_text(doc));
        let mut state = self.model.new_state();
        self.model
            .forward_seq(&pre, &mut state, Logits::None)
            .map_err(|e| model_err(doc, e))?;
        Ok(Checkpoint {
            seq: 0,
            kind: CheckpointKind::Start,
            token_offset: 0,
            byte_offset: 0,
            line: 1,
            span_hash: span_hash(&pre),
            state,
            is_last: false,
        })
    }

    /// Fold `doc` whole, giving every checkpoint to `sink` in order (the start first). The
    /// sink may stop the fold by returning `ControlFlow::Break`.
    pub fn fold(&self, doc: &DocInput<'_>, sink: impl FnMut(Checkpoint) -> ControlFlow<()>) -> Result<FoldSummary> {
        let plan = self.plan(doc);
        self.fold_planned(doc, &plan, sink)
    }

    /// [`Reader::fold`] with the plan already made by [`Reader::plan`] (so a caller that needs
    /// the plan, e.g. to know the token count up front, tokenizes once).
    pub fn fold_planned(
        &self,
        doc: &DocInput<'_>,
        plan: &[Piece],
        sink: impl FnMut(Checkpoint) -> ControlFlow<()>,
    ) -> Result<FoldSummary> {
        self.fold_planned_with_progress(doc, plan, &mut |_| {}, sink)
    }

    /// [`Reader::fold_planned`], telling `on_tokens` the document tokens folded so far every
    /// [`PROGRESS_CHUNKS`] model chunks (a checkpoint span can take minutes with a large
    /// model). The states are those of [`Reader::fold_planned`], bit for bit: a piece is
    /// folded in slices that are whole multiples of the model's chunk length, which is how
    /// sequence mode cuts it anyway.
    pub fn fold_planned_with_progress(
        &self,
        doc: &DocInput<'_>,
        plan: &[Piece],
        on_tokens: &mut dyn FnMut(u64),
        mut sink: impl FnMut(Checkpoint) -> ControlFlow<()>,
    ) -> Result<FoldSummary> {
        let mut start = self.start(doc)?;
        start.is_last = plan.is_empty();
        let preamble_tokens = start.state.tokens;
        let resume = ResumePoint {
            seq: 0,
            byte_offset: 0,
            token_offset: 0,
            state: start.state.clone(),
        };
        if sink(start).is_break() {
            return Ok(FoldSummary {
                preamble_tokens,
                checkpoints: 1,
                stopped: true,
                ..Default::default()
            });
        }
        let mut s = self.fold_rest(doc, plan, resume, on_tokens, sink)?;
        s.preamble_tokens = preamble_tokens;
        s.checkpoints += 1;
        Ok(s)
    }

    /// Fold the rest of `doc` from a checkpoint (not emitted again), giving the later
    /// checkpoints to `sink`.
    pub fn fold_from(
        &self,
        doc: &DocInput<'_>,
        from: ResumePoint,
        sink: impl FnMut(Checkpoint) -> ControlFlow<()>,
    ) -> Result<FoldSummary> {
        let plan = self.plan(doc);
        self.fold_rest(doc, &plan, from, &mut |_| {}, sink)
    }

    fn fold_rest(
        &self,
        doc: &DocInput<'_>,
        plan: &[Piece],
        from: ResumePoint,
        on_tokens: &mut dyn FnMut(u64),
        mut sink: impl FnMut(Checkpoint) -> ControlFlow<()>,
    ) -> Result<FoldSummary> {
        let slice = self.model.chunk_len().max(1) * PROGRESS_CHUNKS;
        let mut idx = 0;
        let mut tok = 0u64;
        while idx < plan.len() && (plan[idx].bytes.start < from.byte_offset || tok < from.token_offset) {
            tok += plan[idx].tokens.len() as u64;
            idx += 1;
        }
        let at_start = from.byte_offset == 0 && from.token_offset == 0;
        if !at_start && (idx == 0 || plan[idx - 1].bytes.end != from.byte_offset || tok != from.token_offset) {
            return Err(Error::NoSuchCheckpoint {
                doc: doc.id.to_string(),
                byte_offset: from.byte_offset,
                token_offset: from.token_offset,
            });
        }
        let lines = LineIndex::new(doc.text);
        let mut state = from.state;
        let mut seq = from.seq;
        let mut summary = FoldSummary::default();
        for piece in &plan[idx..] {
            for part in piece.tokens.chunks(slice) {
                self.model
                    .forward_seq(part, &mut state, Logits::None)
                    .map_err(|e| model_err(doc, e))?;
                summary.tokens += part.len() as u64;
                on_tokens(summary.tokens);
            }
            tok += piece.tokens.len() as u64;
            seq += 1;
            summary.checkpoints += 1;
            let cp = Checkpoint {
                seq,
                kind: piece.end_kind,
                token_offset: tok,
                byte_offset: piece.bytes.end,
                line: lines.line_of(piece.bytes.end),
                span_hash: span_hash(&piece.tokens),
                state: state.clone(),
                is_last: seq as usize == plan.len(),
            };
            if sink(cp).is_break() {
                summary.stopped = true;
                break;
            }
        }
        Ok(summary)
    }

    /// Fold `doc` into `state` with no checkpoints (for a corpus state reading every document
    /// in order); returns the document tokens folded.
    pub fn fold_into(&self, doc: &DocInput<'_>, state: &mut State) -> Result<u64> {
        let mut tokens = self.tokenizer.encode(&self.preamble_text(doc));
        tokens.extend(self.plan(doc).into_iter().flat_map(|p| p.tokens));
        self.model
            .forward_seq(&tokens, state, Logits::None)
            .map_err(|e| model_err(doc, e))?;
        Ok(tokens.len() as u64)
    }
}

/// A document for [`Reader::fold_lanes`]: its input and its plan (made by [`Reader::plan`]),
/// carried with whatever the caller keeps per document.
pub trait LaneDoc {
    /// The document.
    fn input(&self) -> DocInput<'_>;
    /// Its plan.
    fn plan(&self) -> &[Piece];
}

/// A document in a lane: where it is in its plan.
struct Active<D> {
    doc: D,
    state: State,
    lines: LineIndex,
    /// The preamble's tokens, until its start checkpoint is emitted.
    preamble: Option<Vec<u32>>,
    /// The piece being folded, and its tokens folded so far.
    piece: usize,
    pos: usize,
    seq: u32,
    tok: u64,
    summary: FoldSummary,
}

impl<D: LaneDoc> Active<D> {
    /// The tokens the lane is folding now: its preamble, or its current piece.
    fn current(&self) -> &[u32] {
        match &self.preamble {
            Some(p) => p,
            None => &self.doc.plan()[self.piece].tokens,
        }
    }
}

/// The next `step` tokens of `tokens` from `pos`, never leaving one token behind: a lone last
/// token would be folded in token mode, which a lone fold of a longer piece never does.
fn step_len(len: usize, pos: usize, step: usize) -> usize {
    let left = len - pos;
    if left == step + 1 && step > 1 {
        step - 1
    } else {
        left.min(step)
    }
}

impl Reader<'_> {
    /// Folds documents `lanes` at a time in lockstep: every step folds the next chunk of each
    /// lane's document (its preamble, then its plan's pieces) through one
    /// [`Model::forward_lanes`] call, so the products of a step run over all lanes' rows
    /// together. Each document's checkpoints go to `on_checkpoint` in order, exactly those
    /// (and, on the CPU, bit for bit the states) that [`Reader::fold_planned`] gives; when a
    /// document ends, `on_done` gets it with its summary and the lane takes the next document
    /// from `next` (called whenever a lane is free, until it returns `None`). A document whose
    /// fold fails, or whose `on_checkpoint` breaks, ends there (`Err`, or `stopped`) without
    /// disturbing the other lanes. Which documents share steps depends only on the order
    /// `next` gives them.
    pub fn fold_lanes<D: LaneDoc>(
        &self,
        lanes: usize,
        mut next: impl FnMut() -> Option<D>,
        mut on_checkpoint: impl FnMut(&mut D, Checkpoint) -> ControlFlow<()>,
        mut on_done: impl FnMut(D, Result<FoldSummary>),
    ) {
        let lanes = lanes.max(1);
        let step = self.model.chunk_len();
        let mut active: Vec<Active<D>> = Vec::with_capacity(lanes);
        let mut exhausted = false;
        loop {
            while !exhausted && active.len() < lanes {
                match next() {
                    Some(doc) => {
                        let pre = self.tokenizer.encode(&self.preamble_text(&doc.input()));
                        let lines = LineIndex::new(doc.input().text);
                        active.push(Active {
                            doc,
                            state: self.model.new_state(),
                            lines,
                            preamble: Some(pre),
                            piece: 0,
                            pos: 0,
                            seq: 0,
                            tok: 0,
                            summary: FoldSummary::default(),
                        });
                    }
                    None => exhausted = true,
                }
            }
            if active.is_empty() {
                return;
            }
            // One step: the next chunk of every lane.
            let spans: Vec<std::ops::Range<usize>> = active
                .iter()
                .map(|a| a.pos..a.pos + step_len(a.current().len(), a.pos, step))
                .collect();
            let results = {
                let mut batch: Vec<Lane<'_>> = active
                    .iter_mut()
                    .zip(&spans)
                    .map(|(a, r)| {
                        let tokens: &[u32] = match &a.preamble {
                            Some(p) => &p[r.clone()],
                            None => &a.doc.plan()[a.piece].tokens[r.clone()],
                        };
                        Lane {
                            tokens,
                            state: &mut a.state,
                        }
                    })
                    .collect();
                self.model.forward_lanes(&mut batch)
            };
            // Checkpoints of lanes that reached a piece's end; finished lanes leave, in order.
            let mut keep = Vec::with_capacity(active.len());
            for ((mut a, r), res) in active.into_iter().zip(spans).zip(results) {
                if let Err(e) = res {
                    let err = model_err(&a.doc.input(), e);
                    on_done(a.doc, Err(err));
                    continue;
                }
                a.pos = r.end;
                match self.lane_advance(&mut a, &mut on_checkpoint) {
                    ControlFlow::Continue(()) => keep.push(a),
                    ControlFlow::Break(()) => on_done(a.doc, Ok(a.summary)),
                }
            }
            active = keep;
        }
    }

    /// After a step: emit the checkpoints the lane reached (its start after the preamble, a
    /// piece's end) and move on to the next piece; `Break` when the document is done or its
    /// sink stopped it.
    fn lane_advance<D: LaneDoc>(
        &self,
        a: &mut Active<D>,
        on_checkpoint: &mut impl FnMut(&mut D, Checkpoint) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let n_pieces = a.doc.plan().len();
        // Pieces with no tokens end where they start: their checkpoints follow at once.
        loop {
            if a.pos < a.current().len() {
                return ControlFlow::Continue(());
            }
            let cp = match a.preamble.take() {
                Some(pre) => {
                    a.summary.preamble_tokens = pre.len() as u64;
                    Checkpoint {
                        seq: 0,
                        kind: CheckpointKind::Start,
                        token_offset: 0,
                        byte_offset: 0,
                        line: 1,
                        span_hash: span_hash(&pre),
                        state: a.state.clone(),
                        is_last: n_pieces == 0,
                    }
                }
                None => {
                    let piece = &a.doc.plan()[a.piece];
                    a.tok += piece.tokens.len() as u64;
                    a.summary.tokens += piece.tokens.len() as u64;
                    a.seq += 1;
                    a.piece += 1;
                    Checkpoint {
                        seq: a.seq,
                        kind: piece.end_kind,
                        token_offset: a.tok,
                        byte_offset: piece.bytes.end,
                        line: a.lines.line_of(piece.bytes.end),
                        span_hash: span_hash(&piece.tokens),
                        state: a.state.clone(),
                        is_last: a.seq as usize == n_pieces,
                    }
                }
            };
            a.pos = 0;
            a.summary.checkpoints += 1;
            let last = cp.is_last;
            if on_checkpoint(&mut a.doc, cp).is_break() {
                a.summary.stopped = true;
                return ControlFlow::Break(());
            }
            if last {
                return ControlFlow::Break(());
            }
        }
    }
}

fn model_err(doc: &DocInput<'_>, source: rwkv_model::Error) -> Error {
    Error::Model {
        doc: doc.id.to_string(),
        source,
    }
}

/// The store identity for states folded by `model` at `fold` precision and stored at `state`
/// precision, tokenized by `tokenizer` (the store's rule: [`rwkv_store::FoldKind`]). Checkpoint
/// keys are made from its fingerprint.
pub fn store_identity(
    model: &Model,
    fold: FoldPrecision,
    state: StatePrecision,
    tokenizer: &dyn Tokenizer,
) -> StoreIdentity {
    let weights = model.weights_rounded().map(|w| w.to_string());
    let kind = FoldKind {
        weights_rounded: weights.as_deref(),
        fold_bf16: fold == FoldPrecision::Bf16,
        fold_int8: fold == FoldPrecision::Int8,
        state_bf16: state == StatePrecision::Bf16,
    };
    StoreIdentity::for_fold(model.fingerprint(), kind, tokenizer.id(), STATE_FORMAT_VERSION)
}

/// Byte offset → 1-based line number.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// Index the line starts of `text`.
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    /// The 1-based line holding `byte` (a byte just after a newline is on the next line).
    pub fn line_of(&self, byte: usize) -> u32 {
        self.starts.partition_point(|&s| s <= byte) as u32
    }

    /// Number of lines (a trailing newline does not start a new line).
    pub fn lines(&self, text_len: usize) -> u32 {
        let n = self.starts.len();
        if n > 1 && self.starts[n - 1] == text_len {
            (n - 1) as u32
        } else {
            n as u32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spacing_keeps_to_the_state_byte_budget() {
        // Small states keep the floor.
        assert_eq!(default_checkpoint_every(0), DEFAULT_CHECKPOINT_EVERY);
        assert_eq!(default_checkpoint_every(1_000_000), DEFAULT_CHECKPOINT_EVERY);
        assert_eq!(default_checkpoint_every(4096 * 512), 4096);
        // One byte over the floor's budget moves to the next step of 256.
        assert_eq!(default_checkpoint_every(4096 * 512 + 1), 4096 + 256);
        // RWKV-7 1.5B (L24, C2048, 32 heads of 64): 24 * (2 * 2048 + 32 * 64 * 64) floats.
        let floats = 24 * (2 * 2048 + 32 * 64 * 64);
        assert_eq!(default_checkpoint_every(floats * 4), 25_344);
        assert_eq!(default_checkpoint_every(floats * 2), 12_800);
        for bytes in [1usize, 77, 3_000_000, 13_000_000, 34_600_000, usize::MAX / 4] {
            let every = default_checkpoint_every(bytes);
            assert_eq!(every % CHECKPOINT_EVERY_STEP, 0, "{bytes}");
            assert!(every >= DEFAULT_CHECKPOINT_EVERY, "{bytes}");
            assert!(bytes.div_ceil(every) <= STATE_BYTES_PER_TOKEN_BUDGET, "{bytes}");
            // And it is the least such multiple of 256 at or above the floor.
            let less = every - CHECKPOINT_EVERY_STEP;
            assert!(less < DEFAULT_CHECKPOINT_EVERY || bytes.div_ceil(less) > STATE_BYTES_PER_TOKEN_BUDGET);
        }
    }
}
