//! The candle backend's graph (the GPU path) on candle's CPU device, held to the CPU backend's
//! bf16 fold: the same fingerprint, bits/token within the bf16 tolerance, the same greedy
//! continuation, batched lanes equal to lanes folded alone, decode equal to token mode; and the
//! weights it cannot hold refused by name. Built with `--features candle` (CI turns it on).
#![cfg(feature = "candle")]

mod common;

use common::{fixture, max_abs_diff};
use rwkv_model::{Device, FoldPrecision, Lane, LoadOptions, Logits, Model, State, Weights};

const MODELS: [&str; 3] = [
    "rwkv7-code-11m.bf16.safetensors",
    "tiny-rwkv-7v0-834K.safetensors",
    "random-x070-C64-L2-H4N16.safetensors",
];

fn load(name: &str, device: Device) -> Model {
    let opts = LoadOptions::default().with_device(device);
    let mut m = Model::load_with(&fixture(&format!("models/{name}")), &opts).unwrap();
    if device == Device::Cpu {
        m.set_fold_precision(FoldPrecision::Bf16);
    }
    m
}

/// Real text no test wrote for this (the fixture code base's README), as bytes: every model
/// here has at least 256 tokens.
fn text(n: usize) -> Vec<u32> {
    let t = std::fs::read(fixture("code/README.md")).unwrap();
    t.iter().cycle().take(n).map(|&b| u32::from(b)).collect()
}

/// Bits per token of `toks[1..]` from the logits of every position.
fn bits_per_token(logits: &[f32], toks: &[u32], vocab: usize) -> f64 {
    let mut bits = 0.0;
    for (i, &next) in toks.iter().enumerate().skip(1) {
        let row = &logits[(i - 1) * vocab..i * vocab];
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let sum: f64 = row.iter().map(|&x| f64::from(x - max).exp()).sum();
        bits += (sum.ln() - f64::from(row[next as usize] - max)) / std::f64::consts::LN_2;
    }
    bits / (toks.len() - 1) as f64
}

fn greedy(m: &Model, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut st = m.new_state();
    let mut logits = m.forward_seq(prompt, &mut st, Logits::Last).unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let t = logits
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b })
            .0 as u32;
        out.push(t);
        logits = m.forward_token(t, &mut st).unwrap();
    }
    out
}

#[test]
fn the_candle_graph_folds_as_the_cpu_backend_does() {
    for name in MODELS {
        let cpu = load(name, Device::Cpu);
        let gpu_path = load(name, Device::CandleCpu);
        assert_eq!(gpu_path.device(), Device::CandleCpu);
        assert_eq!(gpu_path.fingerprint(), cpu.fingerprint(), "{name}: fingerprint");
        assert_eq!(gpu_path.fold_precision(), FoldPrecision::Bf16);
        let mut refuse = load(name, Device::CandleCpu);
        let e = refuse
            .try_set_fold_precision(FoldPrecision::F32)
            .unwrap_err()
            .to_string();
        assert!(e.contains("candle-cpu") && e.contains("needs --device cpu"), "{e}");
        assert_eq!(refuse.fold_precision(), FoldPrecision::Bf16);
        let vocab = cpu.config().vocab;
        let toks = text(400);
        let (mut s1, mut s2) = (cpu.new_state(), gpu_path.new_state());
        let l1 = cpu.forward_seq(&toks, &mut s1, Logits::All).unwrap();
        let l2 = gpu_path.forward_seq(&toks, &mut s2, Logits::All).unwrap();
        assert_eq!(l2.len(), l1.len());
        let (b1, b2) = (bits_per_token(&l1, &toks, vocab), bits_per_token(&l2, &toks, vocab));
        let rel = (b2 - b1).abs() / b1;
        let dl = max_abs_diff(&l1, &l2);
        eprintln!(
            "{name}: bits/token cpu bf16 {b1:.4}, candle {b2:.4} ({:.3} %), max |Δlogit| {dl:.4}",
            rel * 100.0
        );
        assert!(rel < 0.005, "{name}: bits/token {b1} vs {b2}");
        assert_eq!(s2.tokens, s1.tokens);
        let ds = s1.max_abs_diff(&s2);
        assert!(
            ds < 0.05
                * (1.0
                    + s1.layers
                        .iter()
                        .map(|l| l.wkv.iter().fold(0f32, |a, x| a.max(x.abs())))
                        .fold(0f32, f32::max)),
            "{name}: states differ by {ds}"
        );
        // The state moved (the comparison can fail).
        assert!(s2.max_abs_diff(&gpu_path.new_state()) > 1e-3);
        // Greedy continuations from the same prompt.
        let prompt = &toks[..200];
        assert_eq!(
            greedy(&gpu_path, prompt, 24),
            greedy(&cpu, prompt, 24),
            "{name}: greedy continuation"
        );
    }
}

#[test]
fn candle_lanes_equal_lanes_folded_alone_and_decode_equals_token_mode() {
    let name = "rwkv7-code-11m.bf16.safetensors";
    let m = load(name, Device::CandleCpu);
    let cpu = load(name, Device::Cpu);
    let all = text(1500);
    let docs: Vec<&[u32]> = vec![&all[..1], &all[3..300], &[], &all[100..1400]];
    let alone: Vec<State> = docs
        .iter()
        .map(|d| {
            let mut s = m.new_state();
            if !d.is_empty() {
                m.forward_seq(d, &mut s, Logits::None).unwrap();
            }
            s
        })
        .collect();
    let mut states: Vec<State> = docs.iter().map(|_| m.new_state()).collect();
    let mut lanes: Vec<Lane<'_>> = docs
        .iter()
        .zip(states.iter_mut())
        .map(|(d, st)| Lane { tokens: d, state: st })
        .collect();
    for r in m.forward_lanes(&mut lanes) {
        r.unwrap();
    }
    for (i, (a, b)) in alone.iter().zip(&states).enumerate() {
        assert_eq!(a.tokens, b.tokens, "lane {i}");
        let d = a.max_abs_diff(b);
        assert!(d < 1e-3, "lane {i}: batched differs from alone by {d}");
    }
    // Decode: one token for each of two lanes, against the CPU backend's token mode.
    let (mut c1, mut c2) = (states[1].clone(), states[3].clone());
    let (mut g1, mut g2) = (states[1].clone(), states[3].clone());
    let got = m.decode_lanes(&mut [(65, &mut g1), (10, &mut g2)]).unwrap();
    let want: Vec<f32> = [
        cpu.forward_token(65, &mut c1).unwrap(),
        cpu.forward_token(10, &mut c2).unwrap(),
    ]
    .concat();
    let d = max_abs_diff(&got, &want);
    assert!(d < 0.1, "decode logits differ by {d}");
    assert_eq!(g1.tokens, c1.tokens);
}

#[test]
fn the_candle_backend_refuses_what_it_cannot_hold_by_name() {
    for w in [Weights::Int8, Weights::F32] {
        let opts = LoadOptions::default().with_device(Device::CandleCpu).with_weights(w);
        let e = Model::load_with(&fixture("models/random-x070-C64-L2-H4N16.safetensors"), &opts)
            .unwrap_err()
            .to_string();
        assert!(e.contains("candle-cpu") && e.contains(&format!("--weights {w}")), "{e}");
    }
    let opts = LoadOptions::default().with_device(Device::CandleCpu);
    let e = Model::load_with(&fixture("models/tiny-rwkv-6v0-1m.bf16.safetensors"), &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("RWKV-6") && e.contains("--device cpu"), "{e}");
}
