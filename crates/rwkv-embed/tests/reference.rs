//! The bundled sentence encoder against the reference: sentence-transformers' all-MiniLM-L6-v2
//! in f32 (`fixtures/reference/embed-minilm.json`, made in numpy from the original weights).

use std::path::PathBuf;

use rwkv_embed::{Embedder, similarity};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Case {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(root().join("fixtures/reference/embed-minilm.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            text: c["text"].as_str().unwrap().to_string(),
            ids: c["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect(),
            embedding: c["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect(),
        })
        .collect()
}

fn embedder() -> Embedder {
    Embedder::load(&root().join("fixtures/models/all-minilm-l6-v2.bf16.safetensors")).unwrap()
}

#[test]
fn word_pieces_are_bert_s() {
    let e = embedder();
    for c in cases() {
        assert_eq!(e.tokenizer().encode(&c.text, 256), c.ids, "{:?}", c.text);
    }
}

#[test]
fn embeddings_match_the_f32_reference() {
    let e = embedder();
    let cases = cases();
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let got = e.embed(&texts, 256);
    for (g, c) in got.iter().zip(&cases) {
        assert_eq!(g.len(), 384);
        let norm: f32 = g.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit length: {norm}");
        // bf16 weights against f32: the same direction.
        let cos = similarity(g, &c.embedding);
        assert!(cos > 0.995, "{:?}: cosine {cos} with the reference", c.text);
    }
    // Similarities between texts, as retrieval uses them, within 0.01 of the reference's.
    for i in 0..cases.len() {
        for j in 0..i {
            let want = similarity(&cases[i].embedding, &cases[j].embedding);
            let have = similarity(&got[i], &got[j]);
            assert!((want - have).abs() < 0.01, "{i},{j}: {have} against {want}");
        }
    }
    // What it is for: the question is nearest the code that answers it.
    assert!(similarity(&got[0], &got[1]) > similarity(&got[0], &got[2]) + 0.1);
    // Read again, from the cache: the same vectors; another length is another entry.
    assert_eq!(e.cached(), texts.len());
    assert_eq!(e.embed(&texts, 256), got);
    assert_eq!(e.cached(), texts.len());
    let short = e.embed(&texts[..1], 8);
    assert_eq!(e.cached(), texts.len() + 1);
    assert_ne!(short[0], got[0]);
}

#[test]
fn a_file_that_is_not_an_encoder_is_named() {
    let p = root().join("fixtures/models/rwkv7-code-11m.bf16.safetensors");
    let err = Embedder::load(&p).unwrap_err().to_string();
    assert!(
        err.contains("rwkv7-code-11m") && err.contains("format \"pt\"") && err.contains("make-embedder"),
        "{err}"
    );
    let missing = Embedder::load(&root().join("fixtures/models/nope.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope.safetensors"), "{missing}");
}
