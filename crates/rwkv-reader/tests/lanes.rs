//! The lane scheduler: folding documents B at a time gives every document exactly the
//! checkpoints (bit for bit on the CPU) of folding it alone, whatever B, whichever documents
//! share its steps; a document whose sink stops does not disturb the others.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;

use rwkv_model::tokenizer::BytesTokenizer;
use rwkv_model::{FoldPrecision, Model};
use rwkv_reader::{Checkpoint, DocInput, LaneDoc, Piece, Reader, ReaderBuilder};

fn model() -> Model {
    Model::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/rwkv7-code-11m.bf16.safetensors"),
    )
    .unwrap()
}

struct Doc {
    id: String,
    text: String,
    parts: Vec<usize>,
    plan: Vec<Piece>,
    cps: Vec<Checkpoint>,
}

impl LaneDoc for Doc {
    fn input(&self) -> DocInput<'_> {
        DocInput {
            id: &self.id,
            name: &self.id,
            text: &self.text,
            parts: &self.parts,
        }
    }
    fn plan(&self) -> &[Piece] {
        &self.plan
    }
}

/// Documents of many sizes: empty, one byte, shorter and longer than a chunk and than the
/// checkpoint spacing, with and without parts.
fn corpus(reader: &Reader<'_>) -> Vec<Doc> {
    let mut docs = Vec::new();
    for i in 0..11usize {
        let len = [0, 1, 2, 40, 255, 256, 257, 600, 1300, 90, 3][i];
        let text: String = (0..len)
            .map(|j| (b'a' + ((i * 7 + j * 13) % 26) as u8) as char)
            .collect::<String>()
            .replace('q', "\n");
        let parts = if len > 100 { vec![len / 3, len / 2] } else { vec![] };
        let mut d = Doc {
            id: format!("doc{i}.txt"),
            text,
            parts,
            plan: Vec::new(),
            cps: Vec::new(),
        };
        d.plan = reader.plan(&d.input());
        docs.push(d);
    }
    docs
}

fn alone(reader: &Reader<'_>, docs: &mut [Doc]) {
    for d in docs {
        let mut cps = Vec::new();
        reader
            .fold_planned(&d.input(), &d.plan, |c| {
                cps.push(c);
                ControlFlow::Continue(())
            })
            .unwrap();
        d.cps = cps;
    }
}

fn in_lanes(reader: &Reader<'_>, docs: Vec<Doc>, lanes: usize) -> Vec<Doc> {
    let mut queue = docs.into_iter();
    let mut done = Vec::new();
    reader.fold_lanes(
        lanes,
        || queue.next(),
        |d, c| {
            d.cps.push(c);
            ControlFlow::Continue(())
        },
        |d, r| {
            let s = r.unwrap();
            assert!(!s.stopped);
            assert_eq!(s.checkpoints as usize, d.cps.len());
            done.push(d)
        },
    );
    done.sort_by(|a, b| a.id.cmp(&b.id));
    done
}

fn assert_same_checkpoints(what: &str, a: &[Checkpoint], b: &[Checkpoint]) {
    assert_eq!(a.len(), b.len(), "{what}: checkpoint count");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(
            (
                x.seq,
                x.kind,
                x.token_offset,
                x.byte_offset,
                x.line,
                x.span_hash,
                x.is_last
            ),
            (
                y.seq,
                y.kind,
                y.token_offset,
                y.byte_offset,
                y.line,
                y.span_hash,
                y.is_last
            ),
            "{what}"
        );
        assert_eq!(x.state, y.state, "{what}: state at checkpoint {}", x.seq);
    }
}

#[test]
fn every_lane_count_gives_each_document_its_lone_checkpoints() {
    for precision in [FoldPrecision::F32, FoldPrecision::Bf16] {
        let mut m = model();
        m.set_fold_precision(precision);
        let reader = ReaderBuilder::new(&m, Arc::new(BytesTokenizer))
            .checkpoint_every(300)
            .build();
        let mut want = corpus(&reader);
        alone(&reader, &mut want);
        want.sort_by(|a, b| a.id.cmp(&b.id));
        for lanes in [1, 2, 4, 16] {
            let mut fresh = corpus(&reader);
            fresh.iter_mut().for_each(|d| d.cps.clear());
            let got = in_lanes(&reader, fresh, lanes);
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert_same_checkpoints(&format!("{precision} {lanes} lanes {}", g.id), &w.cps, &g.cps);
            }
        }
    }
}

#[test]
fn a_document_whose_sink_stops_leaves_the_other_lanes_alone() {
    let m = model();
    let reader = ReaderBuilder::new(&m, Arc::new(BytesTokenizer))
        .checkpoint_every(100)
        .build();
    let mut want = corpus(&reader);
    alone(&reader, &mut want);
    let mut queue = corpus(&reader).into_iter();
    let mut done: Vec<(Doc, bool)> = Vec::new();
    reader.fold_lanes(
        3,
        || queue.next(),
        |d, c| {
            // doc7 (600 bytes, several checkpoints) fails its third checkpoint's write.
            if d.id == "doc7.txt" && c.seq == 2 {
                return ControlFlow::Break(());
            }
            d.cps.push(c);
            ControlFlow::Continue(())
        },
        |d, r| {
            let stopped = r.unwrap().stopped;
            done.push((d, stopped))
        },
    );
    assert_eq!(done.len(), want.len());
    for (d, stopped) in &done {
        let w = want.iter().find(|w| w.id == d.id).unwrap();
        if d.id == "doc7.txt" {
            assert!(*stopped);
            assert_same_checkpoints("stopped doc", &w.cps[..2], &d.cps);
        } else {
            assert!(!*stopped, "{}", d.id);
            assert_same_checkpoints(&d.id, &w.cps, &d.cps);
        }
    }
}
