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

/// A copy of the bundled encoder's file with `edit` applied to its header (JSON) and metadata.
fn edited(edit: impl Fn(&mut serde_json::Value)) -> tempfile_path::Path {
    let bytes = std::fs::read(root().join("fixtures/models/all-minilm-l6-v2.bf16.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(&mut header);
    written(&header, &bytes[8 + n..])
}

/// A safetensors file of `header` and `data`, in the system's temporary folder.
fn written(header: &serde_json::Value, data: &[u8]) -> tempfile_path::Path {
    let mut h = serde_json::to_vec(header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    tempfile_path::write(&out)
}

/// A file in the system's temporary folder, removed when dropped.
mod tempfile_path {
    pub struct Path(pub std::path::PathBuf);
    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    pub fn write(bytes: &[u8]) -> Path {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "rwkv-embed-test-{}-{}.safetensors",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&p, bytes).unwrap();
        Path(p)
    }
}

/// A change to a file's header.
type Edit = dyn Fn(&mut serde_json::Value);

#[test]
fn settings_a_file_gets_wrong_are_named_not_panics() {
    let cases: [(&str, Box<Edit>); 4] = [
        (
            "no `vocab`",
            Box::new(|h| drop(h["__metadata__"].as_object_mut().unwrap().remove("vocab"))),
        ),
        (
            "heads do not divide",
            Box::new(|h| h["__metadata__"]["num_attention_heads"] = "7".into()),
        ),
        (
            "positions",
            Box::new(|h| h["__metadata__"]["max_seq_length"] = "1".into()),
        ),
        (
            "word embeddings",
            Box::new(|h| h["__metadata__"]["vocab"] = "[UNK]\n[CLS]\n[SEP]".into()),
        ),
    ];
    for (want, edit) in cases {
        let f = edited(edit);
        let err = Embedder::load(&f.0).unwrap_err().to_string();
        assert!(err.contains(want) && err.contains("rwkv-embed-test"), "{want}: {err}");
    }
}

#[test]
fn an_f32_word_table_gives_the_same_embeddings() {
    // The same file with its word-piece table widened to f32 (the table a bf16 file keeps as
    // bf16): the widened values are the same, so are the embeddings.
    let bytes = std::fs::read(root().join("fixtures/models/all-minilm-l6-v2.bf16.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let name = "embeddings.word_embeddings.weight";
    let span = |h: &serde_json::Value, t: &str| {
        let o = &h[t]["data_offsets"];
        (o[0].as_u64().unwrap() as usize, o[1].as_u64().unwrap() as usize)
    };
    let (a, b) = span(&header, name);
    let wide: Vec<u8> = data[a..b]
        .chunks_exact(2)
        .flat_map(|h| f32::from_bits((u16::from_le_bytes([h[0], h[1]]) as u32) << 16).to_le_bytes())
        .collect();
    // Every tensor after the table moves by the bytes the table grows.
    let grow = wide.len() - (b - a);
    let names: Vec<String> = header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    for t in &names {
        let (s, e) = span(&header, t);
        if t == name {
            header[t]["dtype"] = "F32".into();
            header[t]["data_offsets"] = serde_json::json!([s, s + wide.len()]);
        } else if s >= b {
            header[t]["data_offsets"] = serde_json::json!([s + grow, e + grow]);
        }
    }
    let file = written(&header, &[&data[..a], &wide[..], &data[b..]].concat());
    let wide = Embedder::load(&file.0).unwrap();
    let texts: Vec<String> = cases().into_iter().map(|c| c.text).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    assert_eq!(wide.embed(&texts, 256), embedder().embed(&texts, 256));
}
