//! Sequence mode equals token mode; folding in pieces equals folding whole; state files
//! round-trip bit-exactly and refuse other models.

mod common;

use common::{fixture, max_abs_diff};
use rwkv_model::{Error, LoadOptions, Logits, Model, State, Weights};

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
    let path = dir.path().join("s.safetensors");
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
    let path = dir.path().join("a.safetensors");
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
    let path = dir.path().join("s.safetensors");
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

fn model_as(name: &str, w: Weights) -> Model {
    Model::load_with(
        &fixture(&format!("models/{name}")),
        &LoadOptions::default().with_weights(w),
    )
    .unwrap()
}

#[test]
fn bf16_checkpoints_are_held_once_as_bf16_and_agree_with_f32_weights() {
    let name = "rwkv7-code-11m.bf16.safetensors";
    let (mut own, wide) = (model(name), model_as(name, Weights::F32));
    assert_eq!((own.held_weights(), wide.held_weights()), ("bf16", "f32"));
    assert_eq!(own.weights_rounded(), None);
    assert_eq!(wide.weights_rounded(), None);
    // The same weights, half the bytes; the fingerprint names the file, not the holding.
    assert_eq!(own.fingerprint(), wide.fingerprint());
    assert!(
        own.weight_bytes() * 2 == wide.weight_bytes(),
        "{} vs {}",
        own.weight_bytes(),
        wide.weight_bytes()
    );
    let toks = text_tokens(120);
    let run_tokens = |m: &Model| -> Vec<f32> {
        let mut s = m.new_state();
        toks.iter().flat_map(|&t| m.forward_token(t, &mut s).unwrap()).collect()
    };
    let run_seq = |m: &mut Model, chunk: usize| -> (Vec<f32>, State) {
        m.set_chunk_len(chunk);
        let mut s = m.new_state();
        (m.forward_seq(&toks, &mut s, Logits::All).unwrap(), s)
    };
    // Same values, sums in another order: float rounding only, in both modes.
    let (t_own, t_wide) = (run_tokens(&own), run_tokens(&wide));
    assert!(max_abs_diff(&t_own, &t_wide) < 1e-4);
    let mut s = wide.new_state();
    let seq_wide = wide.forward_seq(&toks, &mut s, Logits::All).unwrap();
    let (seq_own, s_own) = run_seq(&mut own, 64);
    assert!(max_abs_diff(&seq_own, &seq_wide) < 1e-4);
    // The held panels sum each output in one fixed order: chunk lengths and token mode give
    // the same matrix products bit for bit.
    let (seq_other, s_other) = run_seq(&mut own, 17);
    assert_eq!(max_abs_diff(&seq_own, &seq_other), 0.0);
    assert_eq!(s_own.max_abs_diff(&s_other), 0.0);
    assert!(max_abs_diff(&seq_own, &t_own) < 1e-4);
}

#[test]
fn weights_bf16_rounds_f32_checkpoints_and_says_so() {
    let name = "random-x070-C64-L2-H4N16.safetensors";
    let (f, b) = (model(name), model_as(name, Weights::Bf16));
    assert_eq!((f.held_weights(), b.held_weights()), ("f32", "bf16"));
    assert_eq!(b.weights_rounded(), Some(Weights::Bf16));
    assert_eq!(f.fingerprint(), b.fingerprint());
    let toks = text_tokens(60);
    let (mut s1, mut s2) = (f.new_state(), b.new_state());
    let (l1, l2) = (
        f.forward_seq(&toks, &mut s1, Logits::All).unwrap(),
        b.forward_seq(&toks, &mut s2, Logits::All).unwrap(),
    );
    let d = max_abs_diff(&l1, &l2);
    assert!(d > 0.0 && d < 0.25, "{d}");
}

/// A fresh folder, deleted when the test ends.
fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
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

#[test]
fn bf16_state_files_are_half_the_size_and_read_back_rounded() {
    use rwkv_model::StatePrecision;
    for name in [
        "random-x070-C64-L2-H4N16.safetensors",
        "tiny-rwkv-6v0-1m.bf16.safetensors",
    ] {
        let m = model(name);
        let spec = m.state_spec();
        let mut s = m.new_state();
        m.forward_seq(&text_tokens(40), &mut s, Logits::None).unwrap();
        let extra = vec![("doc_id".to_string(), "d".to_string())];
        let f32_bytes = s.to_bytes_as(&spec, "bytes", &extra, StatePrecision::F32);
        assert_eq!(
            f32_bytes,
            s.to_bytes_with(&spec, "bytes", &extra),
            "f32 files are as before"
        );
        let bf16_bytes = s.to_bytes_as(&spec, "bytes", &extra, StatePrecision::Bf16);
        assert_eq!(bf16_bytes, s.to_bytes_as(&spec, "bytes", &extra, StatePrecision::Bf16));
        let data = |b: &[u8]| b.len() - 8 - u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
        assert_eq!(data(&f32_bytes), spec.stored_bytes(StatePrecision::F32), "{name}");
        assert_eq!(data(&bf16_bytes), spec.stored_bytes(StatePrecision::Bf16), "{name}");
        assert_eq!(2 * data(&bf16_bytes), data(&f32_bytes), "{name}");

        let path = std::path::Path::new("mem");
        let (back, info) = State::from_bytes(path, &bf16_bytes, &spec, Some("bytes")).unwrap();
        assert_eq!(info.precision, StatePrecision::Bf16);
        assert_eq!(info.metadata.get("state_precision").map(String::as_str), Some("bf16"));
        assert!(
            back.bit_eq(&s.stored_as(StatePrecision::Bf16)),
            "{name}: reading widens exactly"
        );
        assert!(!back.bit_eq(&s), "{name}: a folded state is not all bf16 values");
        let rel = back.max_abs_diff(&s);
        assert!(rel > 0.0 && rel.is_finite(), "{name}: {rel}");
        let (exact, info) = State::from_bytes(path, &f32_bytes, &spec, None).unwrap();
        assert_eq!(info.precision, StatePrecision::F32);
        assert!(exact.bit_eq(&s));
        // Rounding twice changes nothing.
        assert!(back.stored_as(StatePrecision::Bf16).bit_eq(&back));
    }
}

#[test]
fn a_state_file_whose_precision_and_dtype_disagree_is_refused() {
    let m = model("random-x070-C64-L2-H4N16.safetensors");
    let spec = m.state_spec();
    let s = m.new_state();
    let path = std::path::Path::new("lying.st");
    // An f32 file claiming to be bf16 (the key is a caller-extra, so it lands in the header).
    let extra = vec![("state_precision".to_string(), "bf16".to_string())];
    let lying = s.to_bytes_with(&spec, "bytes", &extra);
    let err = State::from_bytes(path, &lying, &spec, None).unwrap_err().to_string();
    assert!(err.contains("lying.st") && err.contains("bf16"), "{err}");
    let extra = vec![("state_precision".to_string(), "f8".to_string())];
    let unknown = s.to_bytes_with(&spec, "bytes", &extra);
    let err = State::from_bytes(path, &unknown, &spec, None).unwrap_err().to_string();
    assert!(err.contains("state_precision") && err.contains("f8"), "{err}");
    assert_eq!(
        "bf16".parse::<rwkv_model::StatePrecision>(),
        Ok(rwkv_model::StatePrecision::Bf16)
    );
    assert_eq!(rwkv_model::StatePrecision::Bf16.to_string(), "bf16");
    assert!("f16".parse::<rwkv_model::StatePrecision>().is_err());
}

/// Mean negative log2-likelihood of each next token under `logits` (`[T, vocab]`).
fn bits_per_token(logits: &[f32], toks: &[u32], vocab: usize) -> f64 {
    let mut bits = 0f64;
    for (row, &next) in logits.chunks_exact(vocab).zip(&toks[1..]) {
        let max = row.iter().fold(f32::MIN, |m, &x| m.max(x));
        let lse = row.iter().map(|&x| f64::from(x - max).exp()).sum::<f64>().ln() + f64::from(max);
        bits += (lse - f64::from(row[next as usize])) / std::f64::consts::LN_2;
    }
    bits / (toks.len() - 1) as f64
}

#[test]
fn bf16_fold_is_close_to_the_exact_fold_and_independent_of_chunking() {
    for name in ["rwkv7-code-11m.bf16.safetensors", "tiny-rwkv-6v0-1m.bf16.safetensors"] {
        let mut m = model(name);
        let v = m.config().vocab;
        let toks = text_tokens(300);
        m.set_chunk_len(64);
        let mut s_exact = m.new_state();
        let exact = m.forward_seq(&toks, &mut s_exact, Logits::All).unwrap();

        m.set_fold_precision(rwkv_model::FoldPrecision::Bf16);
        assert_eq!(m.fold_precision(), rwkv_model::FoldPrecision::Bf16);
        let mut s_bf16 = m.new_state();
        let bf16 = m.forward_seq(&toks, &mut s_bf16, Logits::All).unwrap();
        let (b_exact, b_bf16) = (bits_per_token(&exact, &toks, v), bits_per_token(&bf16, &toks, v));
        let d = max_abs_diff(&exact, &bf16);
        assert!(d > 0.0, "{name}: the bf16 fold must round its inputs");
        assert!(d < 0.25, "{name}: bf16 logits differ by {d}");
        assert!(
            (b_exact - b_bf16).abs() < 0.02 * b_exact,
            "{name}: bits/token {b_exact} exact vs {b_bf16} bf16"
        );
        // Rounding is per element and every sum runs in a fixed order per row, so the chunk
        // length (as long as chunks have several rows) does not change a bit.
        for chunk in [16, 100] {
            m.set_chunk_len(chunk);
            let mut s = m.new_state();
            let l = m.forward_seq(&toks, &mut s, Logits::All).unwrap();
            assert_eq!(max_abs_diff(&l, &bf16), 0.0, "{name}: chunk {chunk}");
            assert_eq!(s.max_abs_diff(&s_bf16), 0.0, "{name}: chunk {chunk}");
        }
        // Back to f32: the exact fold again, bit for bit.
        m.set_fold_precision(rwkv_model::FoldPrecision::F32);
        m.set_chunk_len(64);
        let mut s = m.new_state();
        let again = m.forward_seq(&toks, &mut s, Logits::All).unwrap();
        assert_eq!(max_abs_diff(&again, &exact), 0.0, "{name}");
        eprintln!("{name}: bf16 fold max |logit diff| {d:.3e}, bits/token {b_exact:.4} exact, {b_bf16:.4} bf16");
    }
}

#[test]
fn int8_fold_is_close_to_the_exact_fold_and_independent_of_chunking() {
    use rwkv_model::FoldPrecision;
    for (name, weights) in [
        ("rwkv7-code-11m.bf16.safetensors", Weights::Auto),
        ("rwkv7-code-11m.bf16.safetensors", Weights::Int8),
        ("tiny-rwkv-6v0-1m.bf16.safetensors", Weights::Auto),
    ] {
        let mut m = model_as(name, weights);
        let v = m.config().vocab;
        let toks = text_tokens(300);
        m.set_chunk_len(64);
        let mut s_exact = m.new_state();
        let exact = m.forward_seq(&toks, &mut s_exact, Logits::All).unwrap();
        let held = m.weight_bytes();

        m.try_set_fold_precision(FoldPrecision::Int8).unwrap();
        assert_eq!(m.fold_precision(), FoldPrecision::Int8);
        if weights == Weights::Int8 {
            // Int8 weights are laid out anew for the fold in place of their panels: one copy
            // (blocks of 32 inputs pad a little more than pairs do).
            assert!(
                m.weight_bytes() < held + held / 20,
                "{name}: int8 weights held once, {} vs {held}",
                m.weight_bytes()
            );
        } else {
            assert!(m.weight_bytes() > held, "{name}: the int8 fold's weights are counted");
        }
        let mut s_int8 = m.new_state();
        let int8 = m.forward_seq(&toks, &mut s_int8, Logits::All).unwrap();
        let (b_exact, b_int8) = (bits_per_token(&exact, &toks, v), bits_per_token(&int8, &toks, v));
        let d = max_abs_diff(&exact, &int8);
        assert!(d > 0.0, "{name}: the int8 fold must round its inputs");
        // Relative to the logits' range: the untrained tiny RWKV-6 (logits up to ±20) moves
        // more under rounded activations than the trained demo model (±14, moved by < 0.2).
        let range = exact.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(
            d < 0.1 * range,
            "{name}: int8 logits differ by {d} (largest |logit| {range})"
        );
        assert!(
            (b_exact - b_int8).abs() < 0.02 * b_exact,
            "{name}: bits/token {b_exact} exact vs {b_int8} int8"
        );
        // Integer block sums are exact and the blocks are summed in one order per output, so
        // the chunk length (chunks of several rows) does not change a bit.
        for chunk in [16, 100] {
            m.set_chunk_len(chunk);
            let mut s = m.new_state();
            let l = m.forward_seq(&toks, &mut s, Logits::All).unwrap();
            assert_eq!(max_abs_diff(&l, &int8), 0.0, "{name}: chunk {chunk}");
            assert_eq!(s.max_abs_diff(&s_int8), 0.0, "{name}: chunk {chunk}");
        }
        // Generation (one row) keeps its own arithmetic: the same logits as before the switch.
        let step = |m: &Model| {
            let mut s = m.new_state();
            toks[..20]
                .iter()
                .map(|&t| m.forward_token(t, &mut s).unwrap())
                .last()
                .unwrap()
        };
        let in_int8 = step(&m);
        m.try_set_fold_precision(FoldPrecision::F32).unwrap();
        assert_eq!(
            m.weight_bytes(),
            held,
            "{name}: switching back drops the int8 copy (or layout)"
        );
        assert_eq!(max_abs_diff(&step(&m), &in_int8), 0.0, "{name}");
        m.set_chunk_len(64);
        let mut s = m.new_state();
        let again = m.forward_seq(&toks, &mut s, Logits::All).unwrap();
        assert_eq!(max_abs_diff(&again, &exact), 0.0, "{name}");
        eprintln!(
            "{name} ({weights}): int8 fold max |logit diff| {d:.3e}, bits/token {b_exact:.4} exact, {b_int8:.4} int8"
        );
    }
}

#[test]
fn int8_weights_fold_and_generate_close_to_the_exact_model() {
    let name = "rwkv7-code-11m.bf16.safetensors";
    let (m, q) = (model(name), model_as(name, Weights::Int8));
    assert_eq!(q.held_weights(), "int8");
    assert_eq!(q.weights_rounded(), Some(Weights::Int8));
    assert!(
        q.weight_bytes() < m.weight_bytes() * 7 / 10,
        "{} vs {}",
        q.weight_bytes(),
        m.weight_bytes()
    );
    let v = m.config().vocab;
    let toks = text_tokens(120);
    let run = |m: &Model| -> Vec<f32> {
        let mut s = m.new_state();
        toks.iter().flat_map(|&t| m.forward_token(t, &mut s).unwrap()).collect()
    };
    let (exact, int8) = (run(&m), run(&q));
    let (b_exact, b_int8) = (bits_per_token(&exact, &toks, v), bits_per_token(&int8, &toks, v));
    assert!(max_abs_diff(&int8, &exact) > 0.0);
    assert!(
        (b_exact - b_int8).abs() < 0.03 * b_exact,
        "bits/token {b_exact} exact vs {b_int8} int8"
    );
    // Folding uses the int8 weights too, and agrees with int8 generation.
    let mut s = q.new_state();
    let seq = q.forward_seq(&toks, &mut s, Logits::All).unwrap();
    assert!(max_abs_diff(&seq, &int8) < 1e-3);
    eprintln!("int8 weights: bits/token {b_exact:.4} exact, {b_int8:.4} int8");
}

#[test]
fn quantized_rwkvcpp_files_refuse_weights_they_cannot_honour() {
    for w in [Weights::Int8, Weights::Bf16] {
        let err = Model::load_with(
            &fixture("rwkvcpp/tiny-rwkv-7v0-834K-Q5_1.bin"),
            &LoadOptions::default().with_weights(w),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("already quantized (Q5_1)") && msg.contains(&w.to_string()),
            "{msg}"
        );
    }
    assert!(
        Model::load_with(
            &fixture("rwkvcpp/tiny-rwkv-7v0-834K-Q5_1.bin"),
            &LoadOptions::default().with_weights(Weights::F32)
        )
        .is_ok()
    );
}

#[test]
fn bf16_and_int8_folds_of_quantized_rwkvcpp_files_keep_their_rounding() {
    // rwkv.cpp's quantized matrices round their inputs as ggml does; the bf16 and int8 folds
    // leave them so.
    for name in ["tiny-rwkv-7v0-834K-Q5_0.bin", "tiny-rwkv-7v0-834K-FP16.bin"] {
        let mut m = Model::load(&fixture(&format!("rwkvcpp/{name}"))).unwrap();
        let toks: Vec<u32> = text_tokens(80).iter().map(|&t| t % m.config().vocab as u32).collect();
        let mut s = m.new_state();
        let exact = m.forward_seq(&toks, &mut s, Logits::All).unwrap();
        for p in [rwkv_model::FoldPrecision::Bf16, rwkv_model::FoldPrecision::Int8] {
            m.set_fold_precision(p);
            let mut s = m.new_state();
            let folded = m.forward_seq(&toks, &mut s, Logits::All).unwrap();
            assert!(folded.iter().all(|x| x.is_finite()), "{name} {p}");
            let d = max_abs_diff(&exact, &folded);
            assert!(d < 0.5, "{name} {p}: {d}");
        }
    }
}

#[test]
fn log_likelihood_scores_from_first_in_any_pieces() {
    use rwkv_model::likelihood::log_likelihood;
    use rwkv_model::likelihood::log_softmax_at;
    let m = model("random-x070-C64-L2-H4N16.safetensors");
    let toks = text_tokens(120);
    let v = m.config().vocab;
    let mut s = m.new_state();
    let logits = m.forward_seq(&toks, &mut s, Logits::All).unwrap();
    for first in [1, 2, 50, 119] {
        // By hand: token i scored by the logits after token i - 1, summed in f64 in order.
        let mut nll = 0f64;
        for i in first..toks.len() {
            nll -= log_softmax_at(&logits[(i - 1) * v..i * v], toks[i]) as f64;
        }
        let mut whole_state = m.new_state();
        let whole = log_likelihood(&m, &mut whole_state, &toks, first, usize::MAX, |_| {}).unwrap();
        assert_eq!(whole.tokens, toks.len() - first);
        assert!(
            (whole.nll_nats - nll).abs() < 1e-6 * nll.abs().max(1.0),
            "first {first}: {whole:?} vs {nll}"
        );
        for piece in [1, 7, 64] {
            let (mut st, mut seen) = (m.new_state(), Vec::new());
            let ll = log_likelihood(&m, &mut st, &toks, first, piece, |n| seen.push(n)).unwrap();
            assert_eq!(ll.tokens, whole.tokens);
            assert!(
                (ll.nll_nats - whole.nll_nats).abs() < 1e-4,
                "piece {piece}: {ll:?} vs {whole:?}"
            );
            assert_eq!(seen.last(), Some(&(toks.len() - 1)));
            assert_eq!(seen.len(), (toks.len() - 1).div_ceil(piece));
            assert_eq!(st.tokens, whole_state.tokens);
        }
    }
    // Nothing to score: nothing read.
    let mut st = m.new_state();
    let none = log_likelihood(&m, &mut st, &toks[..3], 3, 16, |_| panic!("read")).unwrap();
    assert_eq!((none.tokens, none.mean_log_prob(), st.tokens), (0, 0.0, 0));
}
