//! The batched fold: `Model::forward_lanes` leaves every lane's state as `forward_seq` of its
//! tokens alone would (bit for bit on the CPU, f32 and bf16 folds, every generation), however
//! many lanes share the steps and however long each is; a lane that does not fit the model gets
//! its error and the others are folded.

use std::path::PathBuf;

use rwkv_model::{FoldPrecision, Lane, Logits, Model, State};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/models")
        .join(name)
}

/// Deterministic token ids below `vocab`.
fn tokens(seed: u64, n: usize, vocab: usize) -> Vec<u32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % vocab as u64) as u32
        })
        .collect()
}

/// Lengths that cross the chunk (256) and the step's row budget, and the edge cases 1 and 0.
const LENGTHS: [usize; 7] = [1, 7, 255, 256, 300, 0, 1100];

fn docs(vocab: usize) -> Vec<Vec<u32>> {
    LENGTHS
        .iter()
        .enumerate()
        .map(|(i, &n)| tokens(i as u64 + 1, n, vocab))
        .collect()
}

/// Each document folded alone, from a state that already holds a short prefix (so the lanes
/// start from different, non-zero states).
fn alone(model: &Model, docs: &[Vec<u32>]) -> Vec<State> {
    docs.iter()
        .enumerate()
        .map(|(i, d)| {
            let mut st = prefixed(model, i);
            if !d.is_empty() {
                model.forward_seq(d, &mut st, Logits::None).unwrap();
            }
            st
        })
        .collect()
}

fn prefixed(model: &Model, i: usize) -> State {
    let mut st = model.new_state();
    let vocab = model.config().vocab;
    model
        .forward_seq(&tokens(100 + i as u64, 3 + i, vocab), &mut st, Logits::None)
        .unwrap();
    st
}

fn lanes_of<'a>(docs: &'a [Vec<u32>], states: &'a mut [State]) -> Vec<Lane<'a>> {
    docs.iter()
        .zip(states.iter_mut())
        .map(|(d, st)| Lane { tokens: d, state: st })
        .collect()
}

fn batched(model: &Model, docs: &[Vec<u32>]) -> Vec<State> {
    let mut states: Vec<State> = (0..docs.len()).map(|i| prefixed(model, i)).collect();
    for r in model.forward_lanes(&mut lanes_of(docs, &mut states)) {
        r.unwrap();
    }
    states
}

fn assert_same(model: &str, a: &[State], b: &[State]) {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.tokens, y.tokens, "{model} lane {i}: token count");
        for (l, (p, q)) in x.layers.iter().zip(&y.layers).enumerate() {
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert!(
                bits(&p.wkv) == bits(&q.wkv) && bits(&p.att_x) == bits(&q.att_x) && bits(&p.ffn_x) == bits(&q.ffn_x),
                "{model} lane {i} layer {l}: batched state differs from the lone fold"
            );
        }
    }
}

#[test]
fn lanes_fold_as_each_document_alone_bit_for_bit() {
    for name in [
        "rwkv7-code-11m.bf16.safetensors",
        "tiny-rwkv-7v0-834K.safetensors",
        "random-x070-C64-L2-H4N16.safetensors",
        "tiny-rwkv-6v0-1m.bf16.safetensors",
    ] {
        for precision in [FoldPrecision::F32, FoldPrecision::Bf16] {
            let mut model = Model::load(&fixture(name)).unwrap();
            model.set_fold_precision(precision);
            let docs = docs(model.config().vocab);
            let want = alone(&model, &docs);
            assert_same(&format!("{name} {precision}"), &want, &batched(&model, &docs));
            // A shorter chunk (more steps, other boundaries) changes nothing either.
            model.set_chunk_len(64);
            assert_same(&format!("{name} {precision} chunk 64"), &want, &batched(&model, &docs));
        }
    }
}

/// Lanes with logits: every lane's logits after each token equal `forward_seq` of it alone with
/// `Logits::All`, and its state the lone fold's, bit for bit (f32, bf16 and int8 folds; RWKV-7
/// in one set of products, RWKV-6 lane by lane); `log_likelihood_lanes` equals
/// `log_likelihood` of each lane alone.
#[test]
fn lanes_with_logits_equal_each_lane_alone_bit_for_bit() {
    use rwkv_model::likelihood::{log_likelihood, log_likelihood_lanes};
    for name in ["tiny-rwkv-7v0-834K.safetensors", "tiny-rwkv-6v0-1m.bf16.safetensors"] {
        for precision in [FoldPrecision::F32, FoldPrecision::Bf16, FoldPrecision::Int8] {
            let mut model = Model::load(&fixture(name)).unwrap();
            model.set_fold_precision(precision);
            let vocab = model.config().vocab;
            let docs: Vec<Vec<u32>> = [1usize, 9, 0, 30, 2, 257]
                .iter()
                .enumerate()
                .map(|(i, &n)| tokens(i as u64 + 11, n, vocab))
                .collect();
            let what = format!("{name} {precision}");
            let mut want_logits = Vec::new();
            let mut want_states = Vec::new();
            for (i, d) in docs.iter().enumerate() {
                let mut st = prefixed(&model, i);
                want_logits.push(if d.is_empty() {
                    Vec::new()
                } else {
                    model.forward_seq(d, &mut st, Logits::All).unwrap()
                });
                want_states.push(st);
            }
            let mut states: Vec<State> = (0..docs.len()).map(|i| prefixed(&model, i)).collect();
            let got = model.forward_lanes_logits(&mut lanes_of(&docs, &mut states));
            for (i, (g, w)) in got.into_iter().zip(&want_logits).enumerate() {
                let g = g.unwrap();
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert!(bits(&g) == bits(w), "{what} lane {i}: logits differ from the lone fold");
            }
            assert_same(&what, &want_states, &states);
            // Scoring: each lane from its first scored position on.
            let firsts = [1usize, 4, 1, 12, 5, 250];
            let mut states: Vec<State> = (0..docs.len()).map(|i| prefixed(&model, i)).collect();
            let got = log_likelihood_lanes(&model, &mut lanes_of(&docs, &mut states), &firsts).unwrap();
            for (i, (d, &f)) in docs.iter().zip(&firsts).enumerate() {
                let mut st = prefixed(&model, i);
                let want = log_likelihood(&model, &mut st, d, f, usize::MAX, |_| {}).unwrap();
                assert_eq!(got[i], want, "{what} lane {i}: log-likelihood");
                assert_eq!(states[i], st, "{what} lane {i}: state after scoring");
            }
        }
    }
}

#[test]
fn many_lanes_share_the_step_rows_and_still_match() {
    // 40 lanes of 60 tokens: more rows than one step holds, so each lane gets fewer tokens per
    // step than the chunk.
    let model = Model::load(&fixture("tiny-rwkv-7v0-834K.safetensors")).unwrap();
    let vocab = model.config().vocab;
    let docs: Vec<Vec<u32>> = (0..40).map(|i| tokens(7 + i, 60 + i as usize, vocab)).collect();
    assert_same("40 lanes", &alone(&model, &docs), &batched(&model, &docs));
}

#[test]
fn a_lane_that_does_not_fit_gets_its_error_and_the_others_fold() {
    let model = Model::load(&fixture("tiny-rwkv-7v0-834K.safetensors")).unwrap();
    let vocab = model.config().vocab;
    let good = tokens(1, 40, vocab);
    let mut bad_tokens = tokens(2, 40, vocab);
    bad_tokens[20] = vocab as u32 + 5;
    let want = alone(&model, std::slice::from_ref(&good));
    let mut s_good = prefixed(&model, 0);
    let mut s_bad = model.new_state();
    let before_bad = s_bad.clone();
    let mut s_wrong = State {
        layers: Vec::new(),
        tokens: 0,
    };
    let mut lanes = vec![
        Lane {
            tokens: &bad_tokens,
            state: &mut s_bad,
        },
        Lane {
            tokens: &good,
            state: &mut s_good,
        },
        Lane {
            tokens: &good,
            state: &mut s_wrong,
        },
    ];
    let results = model.forward_lanes(&mut lanes);
    assert!(
        matches!(results[0], Err(rwkv_model::Error::TokenOutOfRange { .. })),
        "{:?}",
        results[0]
    );
    assert!(results[1].is_ok());
    assert!(
        matches!(results[2], Err(rwkv_model::Error::BadState { .. })),
        "{:?}",
        results[2]
    );
    assert_eq!(s_bad, before_bad, "a refused lane is left as it was");
    assert_same("the good lane", &want, std::slice::from_ref(&s_good));
}

/// The batched decode step: every lane's logits and state equal `forward_token` of its token
/// alone, bit for bit, whatever the number of lanes (what lets a server decode many answers
/// together and still give each the answer it would get alone), for RWKV-7 (one set of
/// products) and the generations that run the lanes one after another.
#[test]
fn decode_lanes_equal_token_mode_bit_for_bit() {
    for (name, weights) in [
        ("rwkv7-code-11m.bf16.safetensors", rwkv_model::Weights::Auto),
        ("rwkv7-code-11m.bf16.safetensors", rwkv_model::Weights::F32),
        ("rwkv7-code-11m.bf16.safetensors", rwkv_model::Weights::Int8),
        ("tiny-rwkv-7v0-834K.safetensors", rwkv_model::Weights::Auto),
        ("tiny-rwkv-6v0-1m.bf16.safetensors", rwkv_model::Weights::Auto),
    ] {
        let opts = rwkv_model::LoadOptions {
            weights,
            ..Default::default()
        };
        let model = Model::load_with(&fixture(name), &opts).unwrap();
        let vocab = model.config().vocab;
        for lanes in [1usize, 3, 8] {
            let toks = tokens(7 + lanes as u64, lanes, vocab);
            let mut alone: Vec<State> = (0..lanes).map(|i| prefixed(&model, i)).collect();
            let want: Vec<Vec<f32>> = alone
                .iter_mut()
                .zip(&toks)
                .map(|(st, &t)| model.forward_token(t, st).unwrap())
                .collect();
            let mut batched: Vec<State> = (0..lanes).map(|i| prefixed(&model, i)).collect();
            let mut refs: Vec<(u32, &mut State)> = toks.iter().copied().zip(batched.iter_mut()).collect();
            let got = model.decode_lanes(&mut refs).unwrap();
            assert_eq!(got.len(), lanes * vocab);
            for i in 0..lanes {
                assert!(
                    got[i * vocab..(i + 1) * vocab]
                        .iter()
                        .zip(&want[i])
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{name} {weights:?}: lane {i} of {lanes}: logits differ from token mode"
                );
                assert_eq!(batched[i], alone[i], "{name} {weights:?}: lane {i} of {lanes}: state");
            }
        }
        // A lane out of range fails the call and names the token.
        let mut st = model.new_state();
        let mut bad = [(vocab as u32, &mut st)];
        assert!(model.decode_lanes(&mut bad).is_err());
    }
}

/// Timing of the batched decode step (run by hand: `--ignored --nocapture`;
/// `RWKV_TIMING_MODEL=PATH` for another model).
#[test]
#[ignore]
#[allow(clippy::print_stdout)]
fn decode_lanes_timing() {
    let path = std::env::var("RWKV_TIMING_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|_| fixture("rwkv7-code-11m.bf16.safetensors"));
    let model = Model::load(&path).unwrap();
    let vocab = model.config().vocab;
    for lanes in [1usize, 2, 4, 8, 16] {
        let mut states: Vec<State> = (0..lanes).map(|_| model.new_state()).collect();
        let toks = tokens(3, lanes, vocab);
        let steps = 40;
        let t0 = std::time::Instant::now();
        for _ in 0..steps {
            let mut refs: Vec<(u32, &mut State)> = toks.iter().copied().zip(states.iter_mut()).collect();
            model.decode_lanes(&mut refs).unwrap();
        }
        let dt = t0.elapsed().as_secs_f64();
        println!(
            "lanes {lanes:>2}: {:.2} ms/step, {:.0} tok/s aggregate",
            dt / steps as f64 * 1e3,
            (steps * lanes) as f64 / dt
        );
    }
    let mut st = model.new_state();
    let t0 = std::time::Instant::now();
    for i in 0..40 {
        model.forward_token(i, &mut st).unwrap();
    }
    println!("forward_token: {:.2} ms/token", t0.elapsed().as_secs_f64() / 40.0 * 1e3);
}
