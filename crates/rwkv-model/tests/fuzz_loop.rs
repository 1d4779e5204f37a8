//! A bounded, seeded, in-process fuzz loop over the three checkpoint parsers (the cargo-fuzz
//! targets in `fuzz/` do the same unbounded, coverage-guided; they are not run by CI). Each
//! mutated file must parse to `Ok` or `Err` and, when parsed, build a model or fail — never
//! panic.

mod common;

use std::path::Path;

use common::fixture;
use rwkv_model::Model;
use rwkv_model::loader::{pth::read_pth_bytes, read_rwkvcpp_bytes, read_safetensors_bytes};
use rwkv_model::tensor::TensorMap;

/// xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `b`, biased to the first `hot` bytes (headers, where the structure is).
fn mutate(rng: &mut Rng, b: &mut Vec<u8>, hot: usize) {
    let hot = hot.min(b.len()).max(1);
    let pos = |rng: &mut Rng, len: usize| {
        if rng.below(4) > 0 {
            rng.below(hot)
        } else {
            rng.below(len)
        }
    };
    match rng.below(7) {
        0 => {
            let p = pos(rng, b.len());
            b[p] ^= 1 << rng.below(8);
        }
        1 => {
            let p = pos(rng, b.len());
            b[p] = rng.next() as u8;
        }
        2 => {
            // A 32-bit field set to an extreme.
            let p = pos(rng, b.len()) & !3;
            let v: i32 = [0, 1, -1, i32::MAX, i32::MIN, 1 << 20, 31, 33][rng.below(8)];
            if p + 4 <= b.len() {
                b[p..p + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        3 => {
            let cut = rng.below(b.len());
            b.truncate(cut.max(1));
        }
        4 => {
            // Duplicate a slice in place.
            let (s, n) = (pos(rng, b.len()), 1 + rng.below(64));
            let piece: Vec<u8> = b[s..(s + n).min(b.len())].to_vec();
            let at = pos(rng, b.len());
            b.splice(at..at, piece);
        }
        5 => {
            let (s, n) = (pos(rng, b.len()), 1 + rng.below(64));
            let e = (s + n).min(b.len());
            b.drain(s..e);
        }
        _ => {
            // An ASCII digit changed (safetensors JSON offsets and shapes).
            let p = pos(rng, b.len());
            if b[p].is_ascii_digit() {
                b[p] = b"0123456789"[rng.below(10)];
            }
        }
    }
}

fn run(file: &str, hot: usize, iterations: usize, parse: fn(&Path, &[u8]) -> rwkv_formats::Result<TensorMap>) {
    let path = fixture(file);
    let good = std::fs::read(&path).unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ good.len() as u64);
    let (mut parsed, mut built) = (0, 0);
    for _ in 0..iterations {
        let mut b = good.clone();
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut b, hot);
        }
        if let Ok(map) = parse(Path::new("fuzz.bin"), &b) {
            parsed += 1;
            built += Model::from_tensors(&map).is_ok() as usize;
        }
    }
    // The loop must exercise both outcomes, or it tests nothing.
    assert!(
        parsed > 0 && parsed < iterations,
        "{file}: {parsed} of {iterations} parsed, {built} built"
    );
}

#[test]
fn rwkvcpp_mutations_never_panic() {
    run("rwkvcpp/tiny-rwkv-5v2-730K-Q5_1.bin", 4096, 600, read_rwkvcpp_bytes);
    run("rwkvcpp/tiny-rwkv-7v0-834K-FP16.bin", 4096, 300, read_rwkvcpp_bytes);
    run("rwkvcpp/tiny-rwkv-4v0-660K-Q5_0.bin", 4096, 300, read_rwkvcpp_bytes);
}

#[test]
fn safetensors_mutations_never_panic() {
    run(
        "models/random-x070-C64-L2-H4N16.safetensors",
        4096,
        600,
        read_safetensors_bytes,
    );
}

#[test]
fn pth_mutations_never_panic() {
    run("models/random-x070-C64-L2-H4N16.pth", 1 << 20, 400, read_pth_bytes);
}
