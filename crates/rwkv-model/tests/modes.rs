//! Sequence mode equals token mode; folding in pieces equals folding whole; state files
//! round-trip bit-exactly and refuse other models.

mod common;

use common::{fixture, max_abs_diff};
use rwkv_model::{Error, Logits, Model, State};

fn model(name: &str) -> Model {
    Model::load(&fixture(&format!("models/{name}"))).unwrap()
}

fn text_tokens(n: usize) -> Vec<u32> {
    let text = "fn fold(state: &mut State, tokens: &[u32]) { for t in tokens { step(state, *t); } }\n\
                The reader folds each document into a fixed-size state. Café — naïve résumé.\n";
    text.bytes().cycle().take(n).map(u32::from).collect()
}

#[test]
fn sequence_mode_equals_token_mode_at_every_position() {
    for name in [
        "random-x070-C64-L2-H4N16.safetensors",
        "rwkv7-code-11m.bf16.safetensors",
    ] {
        let m = model(name);
        let toks = text_tokens(150);
        let mut s1 = m.new_state();
        let seq = m.forward_seq(&toks, &mut s1, Logits::All).unwrap();
        let mut s2 = m.new_state();
        let v = m.config().vocab;
        for (i, &t) in toks.iter().enumerate() {
            let l = m.forward_token(t, &mut s2).unwrap();
            let d = max_abs_diff(&l, &seq[i * v..(i + 1) * v]);
            assert!(d < 1e-4, "{name}: position {i}: {d}");
        }
        assert!(
            s1.max_abs_diff(&s2) < 1e-4,
            "{name}: states differ by {}",
            s1.max_abs_diff(&s2)
        );
        assert_eq!(s1.tokens, s2.tokens);
    }
}

#[test]
fn chunk_length_does_not_change_results() {
    let mut m = model("random-x070-C64-L2-H4N16.safetensors");
    let toks = text_tokens(300);
    let mut reference = None;
    for chunk in [1, 7, 64, 128, 512] {
        m.set_chunk_len(chunk);
        let mut s = m.new_state();
        let l = m.forward_seq(&toks, &mut s, Logits::Last).unwrap();
        match &reference {
            None => reference = Some((l, s)),
            Some((l0, s0)) => {
                assert!(max_abs_diff(&l, l0) < 1e-4, "chunk {chunk}");
                assert!(s.max_abs_diff(s0) < 1e-4, "chunk {chunk}");
            }
        }
    }
}

#[test]
fn folding_split_at_every_point_equals_folding_whole() {
    let m = model("rwkv7-code-11m.bf16.safetensors");
    let toks = text_tokens(200);
    let mut whole = m.new_state();
    let lw = m.forward_seq(&toks, &mut whole, Logits::Last).unwrap();
    for split in 0..=toks.len() {
        let mut s = m.new_state();
        m.forward_seq(&toks[..split], &mut s, Logits::None).unwrap();
        let l = m.forward_seq(&toks[split..], &mut s, Logits::Last).unwrap();
        let d = s.max_abs_diff(&whole);
        assert!(d < 1e-4, "split at {split}: state differs by {d}");
        if split < toks.len() {
            assert!(max_abs_diff(&l, &lw) < 1e-4, "split at {split}: logits");
        }
        assert_eq!(s.tokens, 200);
    }
}

#[test]
fn state_save_load_is_bit_exact() {
    let m = model("random-x070-C64-L2-H4N16.safetensors");
    let mut s = m.new_state();
    m.forward_seq(&text_tokens(77), &mut s, Logits::None).unwrap();
    let dir = tempdir();
    let path = dir.join("s.safetensors");
    s.save(&path, &m.state_spec(), "bytes").unwrap();
    let (back, info) = State::load(&path, &m.state_spec(), Some("bytes")).unwrap();
    assert!(back.bit_eq(&s));
    assert_eq!(info.tokens, 77);
    assert_eq!(info.fingerprint, m.fingerprint());

    // Resuming from the loaded state gives exactly what resuming the original gives.
    let more = text_tokens(20);
    let (mut a, mut b) = (s.clone(), back);
    let la = m.forward_seq(&more, &mut a, Logits::Last).unwrap();
    let lb = m.forward_seq(&more, &mut b, Logits::Last).unwrap();
    assert_eq!(la, lb);
    assert!(a.bit_eq(&b));

    // Wrong tokenizer is refused.
    assert!(matches!(
        State::load(&path, &m.state_spec(), Some("world")),
        Err(Error::BadState { .. })
    ));
}

#[test]
fn state_from_another_model_is_refused_naming_both() {
    let a = model("random-x070-C64-L2-H4N16.safetensors");
    let b = model("tiny-rwkv-7v0-834K.safetensors");
    let dir = tempdir();
    let path = dir.join("a.safetensors");
    a.new_state().save(&path, &a.state_spec(), "bytes").unwrap();
    let err = State::load(&path, &b.state_spec(), None).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::StateMismatch { .. }));
    assert!(msg.contains(a.fingerprint()) && msg.contains(b.fingerprint()), "{msg}");
    assert!(msg.contains("a.safetensors"), "{msg}");
}

#[test]
fn damaged_state_files_are_errors() {
    let m = model("random-x070-C64-L2-H4N16.safetensors");
    let dir = tempdir();
    let path = dir.join("s.safetensors");
    m.new_state().save(&path, &m.state_spec(), "bytes").unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for cut in [0, 7, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        let r = State::from_bytes(&path, &bytes[..cut], &m.state_spec(), None);
        assert!(r.is_err(), "cut at {cut}");
    }
    assert!(State::from_bytes(&path, b"hello world, not a state", &m.state_spec(), None).is_err());
}

#[test]
fn out_of_range_tokens_are_errors() {
    let m = model("random-x070-C64-L2-H4N16.safetensors");
    let mut s = m.new_state();
    assert!(matches!(
        m.forward_token(256, &mut s),
        Err(Error::TokenOutOfRange { id: 256, vocab: 256 })
    ));
    assert!(m.forward_seq(&[1, 2, 999], &mut s, Logits::None).is_err());
    assert_eq!(s.tokens, 0, "a refused call leaves the state untouched");
}

#[test]
fn bf16_generation_path_is_exact_for_bf16_checkpoints() {
    let mut m = model("rwkv7-code-11m.bf16.safetensors");
    let toks = text_tokens(40);
    let run = |m: &Model| {
        let mut s = m.new_state();
        toks.iter()
            .map(|&t| m.forward_token(t, &mut s).unwrap())
            .last()
            .unwrap()
    };
    let f32_logits = run(&m);
    m.enable_bf16_generation();
    let bf16_logits = run(&m);
    assert!(max_abs_diff(&f32_logits, &bf16_logits) < 1e-4);
}

fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "rwkv-model-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn state_bytes_are_deterministic_and_checksummed() {
    let m = model("random-x070-C64-L2-H4N16.safetensors");
    let mut s = m.new_state();
    m.forward_seq(&text_tokens(33), &mut s, Logits::None).unwrap();
    let extra = vec![
        ("doc_id".to_string(), "abc".to_string()),
        ("seq".to_string(), "3".to_string()),
    ];
    let a = s.to_bytes_with(&m.state_spec(), "bytes", &extra);
    let b = s.clone().to_bytes_with(&m.state_spec(), "bytes", &extra);
    assert_eq!(a, b, "same state, same bytes");
    let path = std::path::Path::new("mem");
    let (back, info) = State::from_bytes(path, &a, &m.state_spec(), None).unwrap();
    assert!(back.bit_eq(&s));
    assert_eq!(info.metadata.get("doc_id").map(String::as_str), Some("abc"));
    assert!(info.data_checksum.is_some());
    // A flipped bit in the tensor data is caught by the checksum.
    let mut bad = a.clone();
    let last = bad.len() - 3;
    bad[last] ^= 0x10;
    let err = State::from_bytes(path, &bad, &m.state_spec(), None).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
}
