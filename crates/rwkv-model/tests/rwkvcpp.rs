//! rwkv.cpp `.bin` files: rwkv.cpp's own test (the logits after the bytes `"in` against
//! `expected-logits-*.bin`, compared by the sum of differences as `tests/logit_difference_validator.inc`
//! does, in token and sequence mode), the quantized formats decoded against the FP32 files, files
//! quantized here to Q4_0/Q4_1/Q8_0, and damaged files.

// rwkv.cpp's expected sums are quoted with all the digits its tests print.
#![allow(clippy::excessive_precision)]

mod common;

use std::path::{Path, PathBuf};

use common::{fixture, max_abs_diff};
use rwkv_model::loader::{read_rwkvcpp, read_rwkvcpp_bytes};
use rwkv_model::tensor::to_f32;
use rwkv_model::{Error, Logits, Model};

fn bin(name: &str) -> PathBuf {
    fixture(&format!("rwkvcpp/{name}"))
}

fn expected_logits(version: &str) -> Vec<f32> {
    let b = std::fs::read(bin(&format!("expected-logits-{version}.bin"))).unwrap();
    assert_eq!(b.len(), 1024);
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// (sum of differences, max |difference|) of the logits after `"in`, token by token and as one
/// sequence.
fn after_prompt(model: &Model, expected: &[f32]) -> [(f32, f32); 2] {
    let prompt = [b'"' as u32, b'i' as u32, b'n' as u32];
    let mut s = model.new_state();
    let mut serial = Vec::new();
    for &t in &prompt {
        serial = model.forward_token(t, &mut s).unwrap();
    }
    let mut s = model.new_state();
    let seq = model.forward_seq(&prompt, &mut s, Logits::Last).unwrap();
    [serial, seq].map(|l| {
        let sum: f32 = l.iter().zip(expected).map(|(a, b)| a - b).sum();
        (sum, max_abs_diff(&l, expected))
    })
}

/// rwkv.cpp's rule: `|Σ (logit − expected)| ≤ |expected difference sum| · 1.05`.
fn rwkvcpp_check(file: &str, version: &str, max_diff_sum: f32) -> [(f32, f32); 2] {
    let m = Model::load(&bin(file)).unwrap();
    let got = after_prompt(&m, &expected_logits(version));
    for (mode, (sum, max)) in ["serial", "sequence"].iter().zip(got) {
        eprintln!(
            "RWKVCPP | {file} | {mode} | diff sum {sum:+.6} (rwkv.cpp allows ±{:.6}) | max|diff| {max:.2e} |",
            max_diff_sum.abs() * 1.05
        );
        assert!(
            sum.abs() <= max_diff_sum.abs() * 1.05,
            "{file} {mode}: difference sum {sum}, rwkv.cpp allows {max_diff_sum}"
        );
    }
    got
}

// Expected difference sums from rwkv.cpp's tests (`test_tiny_rwkv.c`: FP32 0.001; FP16 per
// model; `test_quantization_format_compatibility.c`: the Q5 files).

#[test]
fn fp32_files_match_rwkvcpp_expected_logits() {
    for v in ["4v0-660K", "5v1-730K", "5v2-730K", "6v0-1m", "7v0-834K"] {
        let got = rwkvcpp_check(&format!("tiny-rwkv-{v}-FP32.bin"), v, 0.001);
        for (_, max) in got {
            assert!(max < 1e-4, "{v}: max|diff| {max}");
        }
    }
}

#[test]
fn fp16_files_match_rwkvcpp_expected_logits() {
    // rwkv.cpp lists no FP16 sum for 6v0-1m (its table has the 3m model); its 6v0 value is used.
    for (v, sum) in [
        ("4v0-660K", -0.013652),
        ("5v1-730K", -0.289921),
        ("5v2-730K", 0.455912),
        ("6v0-1m", -0.416620),
        ("7v0-834K", 0.005766),
    ] {
        rwkvcpp_check(&format!("tiny-rwkv-{v}-FP16.bin"), v, sum);
    }
}

#[test]
fn q5_files_within_rwkvcpp_tolerances() {
    for (v, q5_0, q5_1) in [
        ("4v0-660K", -0.170404, 0.278034),
        ("5v1-730K", -163.439407, -18.017435),
        ("5v2-730K", 25.273308, 48.068733),
        // rwkv.cpp's value for this file has moved with ggml (-19.400530, -21.151785 in
        // test_quantization_format_compatibility.c; -27.332073 for the same FP32 → Q5_0
        // quantization in test_tiny_rwkv.c). With the activations rounded as ggml does, ours is
        // -21.151829: the -21.151785 one.
        ("6v0-3m", -21.151785, 3.576909),
    ] {
        rwkvcpp_check(&format!("tiny-rwkv-{v}-Q5_0.bin"), v, q5_0);
        rwkvcpp_check(&format!("tiny-rwkv-{v}-Q5_1.bin"), v, q5_1);
    }
}

/// The RWKV-7 Q5 files (rwkv.cpp's FP32 → Q5 table; its compatibility test lists none for v7).
/// These sums are small (max |diff| 4e-3), so they show how ggml rounds the activations of a
/// quantized product (8 bits per block of 32, Q8_0 / Q8_1 with an f16 `d · Σq`): without that
/// rounding ours were −0.0753 and −0.0733; with it −0.063648 and −0.064662, rwkv.cpp's values
/// to the 6th digit.
#[test]
fn v7_q5_files_match_rwkvcpp_sums() {
    for (file, sum) in [
        ("tiny-rwkv-7v0-834K-Q5_0.bin", -0.063645),
        ("tiny-rwkv-7v0-834K-Q5_1.bin", -0.064663),
    ] {
        for (got, _) in rwkvcpp_check(file, "7v0-834K", sum) {
            assert!((got - sum).abs() < 1e-4, "{file}: {got} vs rwkv.cpp's {sum}");
        }
    }
}

/// One tensor as stored: key, ggml dimensions (innermost first), data type, raw data.
type Raw = (String, Vec<usize>, i32, Vec<u8>);

/// A minimal independent reader of rwkv.cpp files: the header and every tensor as stored.
fn raw_tensors(bytes: &[u8]) -> (Vec<i32>, Vec<Raw>) {
    let i32_at = |o: usize| i32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let header: Vec<i32> = (0..6).map(|i| i32_at(4 * i)).collect();
    let mut off = 24;
    let mut out = Vec::new();
    while off < bytes.len() {
        let (nd, kl, t) = (i32_at(off) as usize, i32_at(off + 4) as usize, i32_at(off + 8));
        off += 12;
        let dims: Vec<usize> = (0..nd).map(|i| i32_at(off + 4 * i) as usize).collect();
        off += 4 * nd;
        let key = String::from_utf8(bytes[off..off + kl].to_vec()).unwrap();
        off += kl;
        let n: usize = dims.iter().product();
        let nbytes = match t {
            0 => 4 * n,
            1 => 2 * n,
            2 => n / 32 * 18,
            3 => n / 32 * 20,
            7 => n / 32 * 22,
            8 => n / 32 * 24,
            9 => n / 32 * 34,
            _ => panic!("type {t}"),
        };
        out.push((key, dims, t, bytes[off..off + nbytes].to_vec()));
        off += nbytes;
    }
    (header, out)
}

/// Write an rwkv.cpp file (version 101) from raw tensors.
fn write_bin(header: &[i32], tensors: &[Raw]) -> Vec<u8> {
    let mut b: Vec<u8> = header.iter().flat_map(|x| x.to_le_bytes()).collect();
    for (key, dims, t, data) in tensors {
        for x in [dims.len() as i32, key.len() as i32, *t] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        for d in dims {
            b.extend_from_slice(&(*d as i32).to_le_bytes());
        }
        b.extend_from_slice(key.as_bytes());
        b.extend_from_slice(data);
    }
    b
}

fn f16(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_le_bytes()
}

/// ggml's reference quantizers (`quantize_row_*_reference`), one block of 32 values.
fn quantize_block(t: i32, x: &[f32]) -> Vec<u8> {
    let (mut amax, mut max, mut min, mut hi) = (0f32, 0f32, f32::MAX, f32::MIN);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
        min = min.min(v);
        hi = hi.max(v);
    }
    let inv = |d: f32| if d != 0.0 { 1.0 / d } else { 0.0 };
    let nibbles = |q: &[u8]| -> Vec<u8> { (0..16).map(|j| (q[j] & 0xF) | ((q[j + 16] & 0xF) << 4)).collect() };
    let fifth_bits = |q: &[u8]| -> [u8; 4] {
        let mut qh = 0u32;
        for (j, &v) in q.iter().enumerate() {
            qh |= (((v >> 4) & 1) as u32) << j;
        }
        qh.to_le_bytes()
    };
    match t {
        2 => {
            let d = max / -8.0;
            let q: Vec<u8> = x.iter().map(|&v| ((v * inv(d) + 8.5) as i8).min(15) as u8).collect();
            [f16(d).to_vec(), nibbles(&q)].concat()
        }
        3 => {
            let d = (hi - min) / 15.0;
            let q: Vec<u8> = x
                .iter()
                .map(|&v| (((v - min) * inv(d) + 0.5) as i8).min(15) as u8)
                .collect();
            [f16(d).to_vec(), f16(min).to_vec(), nibbles(&q)].concat()
        }
        7 => {
            let d = max / -16.0;
            let q: Vec<u8> = x.iter().map(|&v| ((v * inv(d) + 16.5) as i8).min(31) as u8).collect();
            [f16(d).to_vec(), fifth_bits(&q).to_vec(), nibbles(&q)].concat()
        }
        8 => {
            let d = (hi - min) / 31.0;
            let q: Vec<u8> = x.iter().map(|&v| ((v - min) * inv(d) + 0.5) as u8).collect();
            [f16(d).to_vec(), f16(min).to_vec(), fifth_bits(&q).to_vec(), nibbles(&q)].concat()
        }
        9 => {
            let d = amax / 127.0;
            let q: Vec<u8> = x.iter().map(|&v| (v * inv(d)).round() as i8 as u8).collect();
            [f16(d).to_vec(), q].concat()
        }
        _ => unreachable!(),
    }
}

fn quantize(t: i32, values: &[f32]) -> Vec<u8> {
    values.chunks_exact(32).flat_map(|b| quantize_block(t, b)).collect()
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Decoded blocks against the values they were quantized from: within one step for the
/// symmetric formats (the extreme of the sign opposite to the block's largest magnitude is
/// clamped: `amax/8`, `amax/16`; Q8_0 half of `amax/127`), half a step for the affine ones
/// (`range/30`, `range/62`), plus the f16 rounding of `d` and `m` (subnormal for tiny blocks).
fn check_blocks(t: i32, decoded: &[f32], original: &[f32], what: &str) {
    for (xa, xb) in decoded.chunks_exact(32).zip(original.chunks_exact(32)) {
        let amax = xb.iter().fold(0f32, |m, x| m.max(x.abs()));
        let (lo, hi) = xb.iter().fold((f32::MAX, f32::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        let step = match t {
            2 => amax / 8.0,
            3 => (hi - lo) / 30.0,
            7 => amax / 16.0,
            8 => (hi - lo) / 62.0,
            9 => amax / 254.0,
            _ => unreachable!(),
        };
        // f16 `d` below 6.1e-5 is subnormal: absolute error up to 2^-25 per unit of q.
        let bound = step * 1.01 + amax * 2e-3 + 128.0 * 3e-8;
        let d = max_abs_diff(xa, xb);
        assert!(d <= bound, "{what}: block error {d} > {bound}");
    }
}

/// The Q5 fixtures are exactly ggml's reference quantization of the FP32 files (so this test's
/// quantizer, and with it the block layouts, match ggml's), and our decoding of every quantized
/// tensor is within a quantization step of the FP32 values.
#[test]
fn q5_files_are_the_fp32_weights_quantized_and_decode_within_a_step() {
    for v in ["4v0-660K", "5v1-730K", "5v2-730K", "7v0-834K"] {
        let fp32 = std::fs::read(bin(&format!("tiny-rwkv-{v}-FP32.bin"))).unwrap();
        let (_, full) = raw_tensors(&fp32);
        let ours_full = read_rwkvcpp(&bin(&format!("tiny-rwkv-{v}-FP32.bin"))).unwrap();
        for (t, q) in [(7, "Q5_0"), (8, "Q5_1")] {
            let path = bin(&format!("tiny-rwkv-{v}-{q}.bin"));
            let (_, quant) = raw_tensors(&std::fs::read(&path).unwrap());
            let ours = read_rwkvcpp(&path).unwrap();
            let mut n_quantized = 0;
            for ((key, dims, tt, data), (key32, dims32, t32, data32)) in quant.iter().zip(&full) {
                assert_eq!((key, dims), (key32, dims32));
                assert_eq!(*t32, 0);
                if *tt == 0 {
                    assert!(data == data32, "{v} {q} {key}: an f32 tensor changed");
                    continue;
                }
                let a = to_f32(&ours.path, key, ours.get(key).unwrap()).unwrap();
                let b = to_f32(&ours_full.path, key, ours_full.get(key).unwrap()).unwrap();
                assert_eq!(*tt, t, "{v} {q} {key}");
                n_quantized += 1;
                let values = f32s(data32);
                assert!(
                    &quantize(t, &values) == data,
                    "{v} {q} {key}: not ggml's quantization of the FP32 tensor"
                );
                check_blocks(t, &a, &b, &format!("{v} {q} {key}"));
            }
            assert!(n_quantized > 0);
        }
    }
}

/// Q4_0, Q4_1 and Q8_0 (no fixture files): quantize the FP32 files as rwkv.cpp's
/// `rwkv_quantize_model_file` does (ggml's reference quantizers, the same tensors as the Q5
/// files), check every decoded block against the FP32 values, and compare the logits with
/// rwkv.cpp's FP32 → Q expected difference sums by rwkv.cpp's 1.05 × rule (with the activations
/// rounded as ggml rounds them, 7v0's three and 5v1's Q4_0 and Q8_0 match rwkv.cpp's sums to
/// 4–6 digits; the older models' other values come from older ggml versions).
#[test]
fn q4_and_q8_files_quantized_here() {
    // rwkv.cpp test_tiny_rwkv.c, FP32 → Q4_0, Q4_1, Q8_0.
    let table: [(&str, [f32; 3]); 4] = [
        ("4v0-660K", [-0.160030, -0.547409, 0.076282]),
        ("5v1-730K", [117.932594, -26.712271, 0.585238]),
        ("5v2-730K", [35.271305, 67.015076, -9.441034]),
        ("7v0-834K", [0.136785, 0.002614, 0.011924]),
    ];
    let dir = tempdir();
    for (v, sums) in table {
        let (mut header, full) = raw_tensors(&std::fs::read(bin(&format!("tiny-rwkv-{v}-FP32.bin"))).unwrap());
        let (_, q5) = raw_tensors(&std::fs::read(bin(&format!("tiny-rwkv-{v}-Q5_0.bin"))).unwrap());
        let fp32_logits = {
            let m = Model::load(&bin(&format!("tiny-rwkv-{v}-FP32.bin"))).unwrap();
            after_prompt(&m, &expected_logits(v))
        };
        for ((t, name), expected) in [(2, "Q4_0"), (3, "Q4_1"), (9, "Q8_0")].into_iter().zip(sums) {
            header[1] = 101;
            header[5] = t;
            let tensors: Vec<_> = full
                .iter()
                .zip(&q5)
                .map(|((key, dims, _, data), (_, _, tq, _))| {
                    if *tq == 0 {
                        (key.clone(), dims.clone(), 0, data.clone())
                    } else {
                        (key.clone(), dims.clone(), t, quantize(t, &f32s(data)))
                    }
                })
                .collect();
            let path = dir.path().join(format!("tiny-rwkv-{v}-{name}.bin"));
            std::fs::write(&path, write_bin(&header, &tensors)).unwrap();
            let decoded = read_rwkvcpp(&path).unwrap();
            for ((key, _, tq, data), (_, _, tt, _)) in full.iter().zip(&tensors) {
                if *tt != 0 {
                    let a = to_f32(&decoded.path, key, decoded.get(key).unwrap()).unwrap();
                    check_blocks(*tq.max(tt), &a, &f32s(data), &format!("{v} {name} {key}"));
                }
            }
            let m = Model::load(&path).unwrap();
            let got = after_prompt(&m, &expected_logits(v));
            for (mode, (sum, max)) in ["serial", "sequence"].iter().zip(got) {
                eprintln!(
                    "RWKVCPP | FP32 → {name} {v} | {mode} | diff sum {sum:+.6} (rwkv.cpp: {expected:+.6}) | max|diff| {max:.2e} | FP32 max|diff| {:.2e} |",
                    fp32_logits[0].1
                );
                assert!(
                    sum.abs() <= expected.abs() * 1.05,
                    "{v} {name} {mode}: difference sum {sum}, rwkv.cpp {expected}"
                );
            }
        }
    }
}

/// A fresh folder, deleted when the test ends.
fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn load_err(path: &Path, bytes: &[u8]) -> Error {
    match read_rwkvcpp_bytes(path, bytes) {
        Ok(m) => match Model::from_tensors(&m) {
            Ok(_) => panic!("{} loaded", path.display()),
            Err(e) => e,
        },
        Err(e) => e.into(),
    }
}

#[test]
fn damaged_files_are_errors_naming_file_and_tensor() {
    let path = bin("tiny-rwkv-5v2-730K-Q5_1.bin");
    let good = std::fs::read(&path).unwrap();
    let (header, tensors) = raw_tensors(&good);
    let name = Path::new("damaged.bin");

    // Truncated anywhere: an error naming the file, never a panic.
    let mut cuts: Vec<usize> = (0..64)
        .chain([good.len() / 3, good.len() / 2, good.len() - 1])
        .collect();
    let mut off = 24;
    for (i, (key, dims, _, data)) in tensors.iter().enumerate() {
        // Inside the header, the dimensions and the key of every 9th tensor.
        if i % 9 == 0 {
            cuts.extend([off, off + 5, off + 12 + 4 * dims.len() + key.len() / 2]);
        }
        off += 12 + 4 * dims.len() + key.len() + data.len();
    }
    for cut in cuts {
        let e = load_err(name, &good[..cut]);
        assert!(e.to_string().contains("damaged.bin"), "cut {cut}: {e}");
    }

    let with = |edit: &dyn Fn(&mut Vec<i32>, &mut Vec<Raw>)| {
        let (mut h, mut t) = (header.clone(), tensors.clone());
        edit(&mut h, &mut t);
        load_err(name, &write_bin(&h, &t))
    };
    let e = with(&|h, _| h[1] = 102);
    assert!(
        matches!(e, Error::File(rwkv_formats::Error::Format { .. })) && e.to_string().contains("version 102"),
        "{e}"
    );
    let e = with(&|h, _| h[0] = 0x6767_6d67);
    assert!(matches!(e, Error::File(rwkv_formats::Error::Format { .. })), "{e}");
    // Quantized data in a version-100 file (ggml's old block layout).
    let e = with(&|h, _| h[1] = 100);
    assert!(
        matches!(&e, Error::File(rwkv_formats::Error::DType { .. })) && e.to_string().contains("quantize"),
        "{e}"
    );
    // A removed format, and an unknown one, in a tensor.
    let e = with(&|_, t| t[3].2 = 5);
    assert!(
        matches!(&e, Error::File(rwkv_formats::Error::DType { tensor, .. }) if *tensor == tensors[3].0),
        "{e}"
    );
    assert!(e.to_string().contains("Q4_2"), "{e}");
    let e = with(&|_, t| t[3].2 = 77);
    assert!(
        matches!(&e, Error::File(rwkv_formats::Error::DType { tensor, .. }) if *tensor == tensors[3].0),
        "{e}"
    );
    // Dimensions whose product overflows, or far beyond the file: refused before allocating.
    let e = with(&|_, t| t[2].1 = vec![i32::MAX as usize, i32::MAX as usize, i32::MAX as usize]);
    assert!(
        matches!(e, Error::File(rwkv_formats::Error::Corrupt { .. })) && e.to_string().contains(&tensors[2].0),
        "{e}"
    );
    let e = with(&|_, t| t[2].1 = vec![1 << 30, 1 << 20]);
    assert!(matches!(e, Error::File(rwkv_formats::Error::Corrupt { .. })), "{e}");
    // Quantized rows must hold whole blocks.
    let qi = tensors.iter().position(|t| t.2 == 8).unwrap();
    let e = with(&|_, t| t[qi].1 = vec![48, 32]);
    assert!(e.to_string().contains(&tensors[qi].0), "{e}");
    // The same tensor twice; a header that disagrees with `emb.weight`.
    let e = with(&|_, t| t.push(t[5].clone()));
    assert!(
        e.to_string().contains("twice") && e.to_string().contains(&tensors[5].0),
        "{e}"
    );
    let e = with(&|h, _| h[2] = 300);
    assert!(
        matches!(&e, Error::File(rwkv_formats::Error::Shape { tensor, .. }) if tensor == "emb.weight"),
        "{e}"
    );
    // A value rwkv.cpp's converter cannot have written (a decay factor above 1).
    let di = tensors.iter().position(|t| t.0 == "blocks.3.att.time_decay").unwrap();
    let e = with(&|_, t| t[di].3[..4].copy_from_slice(&2f32.to_le_bytes()));
    assert!(
        matches!(&e, Error::File(rwkv_formats::Error::Corrupt { .. }))
            && e.to_string().contains("blocks.3.att.time_decay"),
        "{e}"
    );
    // A tensor the model needs is missing.
    let e = with(&|_, t| t.retain(|x| x.0 != "blocks.7.ffn.value.weight"));
    assert!(
        matches!(&e, Error::File(rwkv_formats::Error::MissingTensor { tensor, .. }) if tensor == "blocks.7.ffn.value.weight"),
        "{e}"
    );
    assert!(e.to_string().contains("damaged.bin"));
}

#[test]
fn fp32_bin_and_official_file_share_a_fingerprint() {
    // Same values after the converter's rewrites are undone (bit for bit), so the same model.
    let a = Model::load(&bin("tiny-rwkv-6v0-1m-FP32.bin")).unwrap();
    let b = Model::load(&fixture("models/tiny-rwkv-6v0-1m.bf16.safetensors")).unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert!(a.fingerprint().starts_with("v6-"));
    let official = rwkv_model::loader::read_safetensors(&fixture("models/tiny-rwkv-6v0-1m.bf16.safetensors")).unwrap();
    let ours = read_rwkvcpp(&bin("tiny-rwkv-6v0-1m-FP32.bin")).unwrap();
    assert_eq!(
        official.tensors.keys().collect::<Vec<_>>(),
        ours.tensors.keys().collect::<Vec<_>>()
    );
    for (k, t) in &official.tensors {
        let u = ours.get(k).unwrap();
        assert_eq!(t.shape, u.shape, "{k}");
        assert_eq!(
            to_f32(&official.path, k, t).unwrap(),
            to_f32(&ours.path, k, u).unwrap(),
            "{k}"
        );
    }
    assert_eq!(a.metadata().get("format").map(String::as_str), Some("rwkv.cpp"));
    assert_eq!(a.metadata().get("rwkvcpp_data_type").map(String::as_str), Some("FP32"));
}

/// Every quantized file: the Q5 fixtures, and the FP32 fixtures quantized here to Q4_0, Q4_1
/// and Q8_0 as rwkv.cpp would (written to `dir`).
fn quantized_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for v in ["4v0-660K", "5v1-730K", "5v2-730K", "6v0-3m", "7v0-834K"] {
        files.push(bin(&format!("tiny-rwkv-{v}-Q5_0.bin")));
        files.push(bin(&format!("tiny-rwkv-{v}-Q5_1.bin")));
        if v == "6v0-3m" {
            continue;
        }
        let (mut header, full) = raw_tensors(&std::fs::read(bin(&format!("tiny-rwkv-{v}-FP32.bin"))).unwrap());
        let (_, q5) = raw_tensors(&std::fs::read(bin(&format!("tiny-rwkv-{v}-Q5_0.bin"))).unwrap());
        for (t, name) in [(2, "Q4_0"), (3, "Q4_1"), (9, "Q8_0")] {
            header[1] = 101;
            header[5] = t;
            let tensors: Vec<_> = full
                .iter()
                .zip(&q5)
                .map(|((key, dims, _, data), (_, _, tq, _))| {
                    let (tt, d) = if *tq == 0 {
                        (0, data.clone())
                    } else {
                        (t, quantize(t, &f32s(data)))
                    };
                    (key.clone(), dims.clone(), tt, d)
                })
                .collect();
            let path = dir.join(format!("tiny-rwkv-{v}-{name}.bin"));
            std::fs::write(&path, write_bin(&header, &tensors)).unwrap();
            files.push(path);
        }
    }
    files
}

/// Logits after every token of a short prompt: token by token, and as one sequence.
fn both_modes(m: &Model) -> (Vec<f32>, Vec<f32>) {
    let prompt: Vec<u32> = b"\"in the beginning".iter().map(|&b| u32::from(b)).collect();
    let mut s = m.new_state();
    let mut serial = Vec::new();
    for &t in &prompt {
        serial.extend(m.forward_token(t, &mut s).unwrap());
    }
    let mut s = m.new_state();
    let seq = m.forward_seq(&prompt, &mut s, Logits::All).unwrap();
    (serial, seq)
}

/// rwkv.cpp's quantized files stay quantized (`auto`): they hold about their file's size, say
/// which format they hold, and share the fingerprint of the decoded model (`--weights f32`:
/// decoded blocks, inputs rounded the same way). Each product agrees with the decoded path's to
/// float rounding (checked on every quantized tensor, held and decoded, on the same rows).
/// Whole-model logits agree to ~1e-6 until that rounding moves some activation across one of
/// the 8-bit steps its next quantized product rounds it to: a jump of one step, which shifts the
/// logits by up to ~0.5% of their scale and fades over the next tokens (which of the two float
/// orders is "right" is for rwkv.cpp's expected logits to say: the held one sums in ggml's order,
/// and the reference tests above pass with it). Token mode and sequence mode give the same bits.
#[test]
fn quantized_files_stay_quantized_and_match_the_decoded_path() {
    use rwkv_model::linalg::{Mat, QuantMat, linear};
    let tmp = tempdir();
    let dir = tmp.path().join("held");
    std::fs::create_dir_all(&dir).unwrap();
    for path in quantized_files(&dir) {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let held = Model::load(&path).unwrap();
        let decoded = Model::load_with(
            &path,
            &rwkv_model::LoadOptions::default().with_weights(rwkv_model::Weights::F32),
        )
        .unwrap();
        let q = file.rsplit('-').next().unwrap().trim_end_matches(".bin").to_lowercase();
        // The tiny RWKV-7 models hold more bytes of f32 LoRA factors than of quantized blocks.
        let want = if file.contains("7v0") { "f32" } else { q.as_str() };
        assert_eq!((held.held_weights(), decoded.held_weights()), (want, "f32"), "{file}");
        assert_eq!(held.fingerprint(), decoded.fingerprint(), "{file}");
        let size = std::fs::metadata(&path).unwrap().len() as usize;
        assert!(
            held.weight_bytes() * 2 < decoded.weight_bytes() && held.weight_bytes() < size * 2,
            "{file}: holds {} bytes, decoded {}, file {size}",
            held.weight_bytes(),
            decoded.weight_bytes()
        );

        // Every quantized tensor, held and decoded, on the same rows.
        let map = read_rwkvcpp(&path).unwrap();
        let mut worst = 0f32;
        for (name, t) in &map.tensors {
            let rwkv_model::tensor::DType::Ggml(qt) = t.dtype else {
                continue;
            };
            if t.shape.len() != 2 {
                continue;
            }
            let (n, k) = (t.shape[0], t.shape[1]);
            let h = Mat::from_quant(QuantMat::new(n, k, qt, t.data.to_vec()).unwrap());
            let mut d = Mat::new(n, k, to_f32(&map.path, name, t).unwrap());
            d.set_act_quant(map.act_quant(name));
            for rows in [1usize, 19] {
                let x: Vec<f32> = (0..rows * k)
                    .map(|i| ((i * 7919 % 997) as f32 / 498.0 - 1.0) * if i % 13 == 0 { 4.0 } else { 0.5 })
                    .collect();
                let (mut a, mut b) = (vec![0f32; rows * n], vec![0f32; rows * n]);
                linear(&x, rows, &h, &mut a);
                linear(&x, rows, &d, &mut b);
                let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
                worst = worst.max(max_abs_diff(&a, &b) / scale);
            }
        }
        assert!(worst <= 2e-6, "{file}: a product differs by {worst} of its scale");

        let (hs, hq) = both_modes(&held);
        let (ds, _) = both_modes(&decoded);
        let vocab = held.config().vocab;
        let scale = ds.iter().fold(0f32, |m, v| m.max(v.abs()));
        let per_token: Vec<f32> = hs
            .chunks(vocab)
            .zip(ds.chunks(vocab))
            .map(|(a, b)| max_abs_diff(a, b))
            .collect();
        let close = per_token.iter().filter(|&&d| d <= 1e-4 * scale).count();
        let max = per_token.iter().fold(0f32, |m, &d| m.max(d));
        eprintln!(
            "QUANT | {file} | held {} B, decoded {} B | products within {worst:.1e} of scale | tokens within 1e-4 of logit scale {scale:.1}: {close}/{} | max|logit diff| {max:.2e} |",
            held.weight_bytes(),
            decoded.weight_bytes(),
            per_token.len()
        );
        assert!(max <= 0.05 * scale, "{file}: {per_token:?}");
        // The same bits where every other product is mode-independent too. Not with
        // `RWKV_SIMD=portable`, whose f32 mat-vec (the f32 head, the f32 LoRA factors of RWKV-6
        // and 7) rounds apart from gemm's fused multiply-adds, and can so move an activation
        // across an 8-bit step as above. The quantized products themselves are the same bits in
        // every mode (`quant`'s unit tests).
        let modes = max_abs_diff(&hs, &hq);
        if rwkv_model::simd::level() == rwkv_model::simd::Level::Portable {
            assert!(
                modes <= 0.05 * scale,
                "{file}: token and sequence mode differ by {modes}"
            );
        } else if file.contains("7v0") {
            assert!(
                modes <= 1e-5 * scale,
                "{file}: token and sequence mode differ by {modes}"
            );
        } else {
            assert!(hs == hq, "{file}: token and sequence mode differ by {modes}");
        }
    }
}

/// Quantized tensors whose blocks do not fit their shape (built in memory, past the file
/// reader's own checks): named errors for the file and tensor, held or decoded, never a panic.
#[test]
fn inconsistent_quantized_tensors_are_named_errors() {
    use rwkv_model::tensor::{Bytes, DType};
    let path = bin("tiny-rwkv-5v2-730K-Q5_1.bin");
    let good = read_rwkvcpp(&path).unwrap();
    let name = "blocks.1.att.key.weight";
    assert!(matches!(good.get(name).unwrap().dtype, DType::Ggml(_)));
    type Edit<'a> = (&'a str, &'a dyn Fn(&mut rwkv_model::tensor::RawTensor));
    let edits: [Edit<'_>; 3] = [
        ("truncated", &|t| {
            t.data = Bytes::Owned(t.data[..t.data.len() - 7].to_vec())
        }),
        ("longer", &|t| {
            t.data = Bytes::Owned([&t.data[..], &[0u8; 24][..]].concat())
        }),
        ("rows not whole blocks", &|t| {
            t.shape = vec![t.shape[0] * 2, t.shape[1] / 2 + 16]
        }),
    ];
    for (what, edit) in edits {
        let mut map = good.clone();
        edit(map.tensors.get_mut(name).unwrap());
        for w in [rwkv_model::Weights::Auto, rwkv_model::Weights::F32] {
            let e = Model::from_tensors_with(&map, &rwkv_model::LoadOptions::default().with_weights(w)).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains(name) && msg.contains("tiny-rwkv-5v2-730K-Q5_1.bin"),
                "{what} ({w}): {msg}"
            );
        }
    }
}

/// Not a check: bytes held and speed, quantized blocks against decoded f32, on the largest
/// quantized fixture (`cargo test --release --test rwkvcpp held_speed -- --ignored --nocapture`).
#[test]
#[ignore]
fn held_speed() {
    let path = bin("tiny-rwkv-6v0-3m-Q5_1.bin");
    let tokens: Vec<u32> = (0..1024u32).map(|i| (i * 37 + 11) % 256).collect();
    for w in [rwkv_model::Weights::F32, rwkv_model::Weights::Auto] {
        let m = Model::load_with(&path, &rwkv_model::LoadOptions::default().with_weights(w)).unwrap();
        let mut s = m.new_state();
        let t0 = std::time::Instant::now();
        m.forward_seq(&tokens, &mut s, Logits::Last).unwrap();
        let fold = tokens.len() as f64 / t0.elapsed().as_secs_f64();
        let t0 = std::time::Instant::now();
        for &t in &tokens[..256] {
            m.forward_token(t, &mut s).unwrap();
        }
        let decode = 256.0 / t0.elapsed().as_secs_f64();
        eprintln!(
            "HELD | weights {w} | holds {} ({} bytes) | fold {fold:.0} tok/s | decode {decode:.0} tok/s |",
            m.held_weights(),
            m.weight_bytes()
        );
    }
}
