//! Checkpoints fall where they should, and resuming from any checkpoint gives the state of
//! folding the document whole.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;

use rwkv_model::Model;
use rwkv_model::tokenizer::{BytesTokenizer, WorldTokenizer};
use rwkv_reader::{Checkpoint, CheckpointKind, DocInput, LineIndex, ReaderBuilder, ResumePoint};

fn model() -> Model {
    Model::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/rwkv7-code-11m.bf16.safetensors"),
    )
    .unwrap()
}

const TEXT: &str =
    "# Title\n\nfn main() {\n    println!(\"hi\");\n}\n\n## Second part\nCafé — naïve.\nmore text here\n";

#[test]
fn checkpoints_at_parts_and_intervals() {
    let m = model();
    let reader = ReaderBuilder::new(&m, Arc::new(BytesTokenizer))
        .checkpoint_every(16)
        .build();
    let part2 = TEXT.find("## Second").unwrap();
    let doc = DocInput {
        id: "d",
        name: "a.md",
        text: TEXT,
        parts: &[part2],
    };
    let mut cps: Vec<Checkpoint> = Vec::new();
    let s = reader
        .fold(&doc, |c| {
            cps.push(c);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(s.tokens as usize, TEXT.len());
    assert_eq!(cps[0].kind, CheckpointKind::Start);
    assert_eq!(cps.last().unwrap().kind, CheckpointKind::End);
    assert_eq!(cps.last().unwrap().byte_offset, TEXT.len());
    assert!(
        cps.iter()
            .any(|c| c.kind == CheckpointKind::Part && c.byte_offset == part2)
    );
    for w in cps.windows(2) {
        assert!(w[1].token_offset - w[0].token_offset <= 16);
        assert_eq!(w[1].seq, w[0].seq + 1);
    }
    let lines = LineIndex::new(TEXT);
    for c in &cps {
        assert_eq!(c.line, lines.line_of(c.byte_offset));
        assert!(TEXT.is_char_boundary(c.byte_offset) || c.byte_offset == TEXT.len());
    }
    assert_eq!(s.checkpoints as usize, cps.len());
}

#[test]
fn resuming_from_any_checkpoint_gives_the_whole_fold() {
    let m = model();
    {
        let reader = ReaderBuilder::new(&m, Arc::new(BytesTokenizer))
            .checkpoint_every(7)
            .build();
        let doc = DocInput {
            id: "d",
            name: "a.md",
            text: TEXT,
            parts: &[20, 55],
        };
        let mut cps = Vec::new();
        reader
            .fold(&doc, |c| {
                cps.push(c);
                ControlFlow::Continue(())
            })
            .unwrap();
        let whole = cps.last().unwrap().state.clone();
        for cp in &cps[..cps.len() - 1] {
            let from = ResumePoint {
                seq: cp.seq,
                byte_offset: cp.byte_offset,
                token_offset: cp.token_offset,
                state: cp.state.clone(),
            };
            let mut last = None;
            reader
                .fold_from(&doc, from, |c| {
                    last = Some(c);
                    ControlFlow::Continue(())
                })
                .unwrap();
            let last = last.unwrap();
            assert_eq!(last.seq, cps.last().unwrap().seq);
            let d = last.state.max_abs_diff(&whole);
            assert!(d < 1e-4, "resume from seq {}: {d}", cp.seq);
        }
        // A resume point that is not a checkpoint is refused.
        let bad = ResumePoint {
            seq: 1,
            byte_offset: 3,
            token_offset: 3,
            state: cps[0].state.clone(),
        };
        assert!(reader.fold_from(&doc, bad, |_| ControlFlow::Continue(())).is_err());
    }
}

#[test]
fn a_sink_can_stop_the_fold() {
    let m = model();
    let reader = ReaderBuilder::new(&m, Arc::new(BytesTokenizer))
        .checkpoint_every(8)
        .build();
    let doc = DocInput {
        id: "d",
        name: "x",
        text: TEXT,
        parts: &[],
    };
    let mut n = 0;
    let s = reader
        .fold(&doc, |_| {
            n += 1;
            if n == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert!(s.stopped);
    assert_eq!(n, 3);
}

#[test]
fn empty_documents_have_a_start_and_an_end_state() {
    let m = model();
    let reader = ReaderBuilder::new(&m, Arc::new(BytesTokenizer)).build();
    let doc = DocInput {
        id: "e",
        name: "empty.txt",
        text: "",
        parts: &[],
    };
    let mut cps = Vec::new();
    reader
        .fold(&doc, |c| {
            cps.push(c);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(cps.len(), 1, "only the start checkpoint: nothing to fold");
    assert!(cps[0].state.tokens > 0, "the preamble was folded");
}

#[test]
fn line_index() {
    let l = LineIndex::new("a\nbb\n\nc");
    assert_eq!(l.line_of(0), 1);
    assert_eq!(l.line_of(1), 1);
    assert_eq!(l.line_of(2), 2);
    assert_eq!(l.line_of(5), 3);
    assert_eq!(l.line_of(6), 4);
    assert_eq!(l.lines(7), 4);
    assert_eq!(LineIndex::new("a\n").lines(2), 1);
}

#[test]
fn plans_cover_the_text_exactly_with_a_multibyte_tokenizer() {
    let m = model();
    let reader = ReaderBuilder::new(&m, Arc::new(WorldTokenizer::new().unwrap()))
        .checkpoint_every(5)
        .build();
    // Part offsets inside a multi-byte character move to the next boundary.
    let inside_e = TEXT.find('é').unwrap() + 1;
    let doc = DocInput {
        id: "d",
        name: "a.md",
        text: TEXT,
        parts: &[inside_e, 10_000, 0],
    };
    let plan = reader.plan(&doc);
    let tok = reader.tokenizer().clone();
    let mut at = 0;
    for p in &plan {
        assert_eq!(p.bytes.start, at);
        assert!(p.tokens.len() <= 5);
        assert_eq!(tok.decode_bytes(&p.tokens), TEXT.as_bytes()[p.bytes.clone()]);
        at = p.bytes.end;
    }
    assert_eq!(at, TEXT.len());
    assert!(
        plan.iter()
            .any(|p| p.bytes.end == inside_e + 1 && p.end_kind == CheckpointKind::Part)
    );
}

#[test]
fn folds_report_progress_and_slicing_at_chunk_multiples_changes_no_state() {
    let mut m = model();
    m.set_chunk_len(4);
    let text: String = (0..40).map(|i| format!("line {i}: let x{i} = {i} * 2;\n")).collect();
    let toks: Vec<u32> = text.bytes().map(u32::from).collect();
    // Sequence mode cuts its input into chunks anyway: slices of whole chunks fold alike.
    let mut whole = m.new_state();
    m.forward_seq(&toks, &mut whole, rwkv_model::Logits::None).unwrap();
    let mut sliced = m.new_state();
    for part in toks.chunks(4 * rwkv_reader::PROGRESS_CHUNKS) {
        m.forward_seq(part, &mut sliced, rwkv_model::Logits::None).unwrap();
    }
    assert_eq!(whole.max_abs_diff(&sliced), 0.0);
    // Progress comes every PROGRESS_CHUNKS chunks, rising to the document's tokens.
    let reader = ReaderBuilder::new(&m, Arc::new(BytesTokenizer))
        .checkpoint_every(300)
        .build();
    let doc = DocInput {
        id: "d",
        name: "a.rs",
        text: &text,
        parts: &[],
    };
    let plan = reader.plan(&doc);
    let mut seen = Vec::new();
    let mut with = Vec::new();
    reader
        .fold_planned_with_progress(&doc, &plan, &mut |n| seen.push(n), |c| {
            with.push(c.state);
            ControlFlow::Continue(())
        })
        .unwrap();
    let total: u64 = plan.iter().map(|p| p.tokens.len() as u64).sum();
    assert!(seen.len() as u64 >= total / 16, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]) && seen.last() == Some(&total),
        "{seen:?}"
    );
    let mut without = Vec::new();
    reader
        .fold(&doc, |c| {
            without.push(c.state);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(with.len(), without.len());
    for (a, b) in with.iter().zip(&without) {
        assert_eq!(a.max_abs_diff(b), 0.0);
    }
}
