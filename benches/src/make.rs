//! Random RWKV-7 checkpoints of the official "G1" shapes, written as safetensors by streaming:
//! the header first, then each tensor generated and written in order, a few MB at a time, so a
//! 14 GB model is made with a few MB of memory.
//!
//! Every value is a function of (seed, tensor name, index) alone (splitmix64 of a per-tensor key
//! plus the index), so files are deterministic and the blocks of one tensor are made in
//! parallel.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use rayon::prelude::*;

use crate::Shape;

/// How the values of a generated file are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileDType {
    /// bf16, rounded to nearest even: how the G1 checkpoints are published.
    #[default]
    Bf16,
    /// f32.
    F32,
}

impl FileDType {
    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            FileDType::Bf16 => 2,
            FileDType::F32 => 4,
        }
    }

    fn safetensors_name(self) -> &'static str {
        match self {
            FileDType::Bf16 => "BF16",
            FileDType::F32 => "F32",
        }
    }
}

impl std::str::FromStr for FileDType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bf16" => Ok(FileDType::Bf16),
            "f32" => Ok(FileDType::F32),
            _ => Err(format!("unknown dtype {s:?} (expected bf16 or f32)")),
        }
    }
}

/// One tensor of a generated model: its official name and shape, and the range of its values
/// (`offset + scale · u` with `u` uniform in [-1, 1)).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// The official RWKV-7 checkpoint name (`blocks.3.att.w1`).
    pub name: String,
    /// Its shape, as the official checkpoints store it.
    pub dims: Vec<usize>,
    /// Half-width of the value range.
    pub scale: f32,
    /// Centre of the value range.
    pub offset: f32,
}

impl TensorSpec {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The tensors of an RWKV-7 checkpoint of `shape`, in file order, with the official names and
/// shapes (those of the published `.pth` files: vectors `[1, 1, C]`, LoRA factors `[C, D]` then
/// `[D, C]`, `r_k` `[H, N]`, matrices `[out, in]`; the value LoRA in every layer, as training
/// makes it, though layer 0 does not use it). Values are scaled like a trained model's, so
/// activations stay finite over long folds.
pub fn v7_tensors(shape: Shape) -> Vec<TensorSpec> {
    let c = shape.n_embd;
    let f = 4 * c;
    let h = c / shape.head_size;
    let [dw, da, dv, dg] = shape.lora;
    let mut t = Vec::new();
    let mut add = |name: String, dims: Vec<usize>, scale: f32, offset: f32| {
        t.push(TensorSpec {
            name,
            dims,
            scale,
            offset,
        })
    };
    let s = 1.0 / (c as f32).sqrt();
    add("emb.weight".into(), vec![shape.vocab, c], 1e-2, 0.0);
    add("blocks.0.ln0.weight".into(), vec![c], 0.1, 1.0);
    add("blocks.0.ln0.bias".into(), vec![c], 0.1, 0.0);
    for i in 0..shape.n_layer {
        let a = format!("blocks.{i}.att.");
        let p = format!("blocks.{i}.");
        for n in ["ln1", "ln2"] {
            add(format!("{p}{n}.weight"), vec![c], 0.1, 1.0);
            add(format!("{p}{n}.bias"), vec![c], 0.1, 0.0);
        }
        for n in ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g"] {
            add(format!("{a}{n}"), vec![1, 1, c], 0.5, 0.5);
        }
        add(format!("{a}w0"), vec![1, 1, c], 1.0, -1.0);
        add(format!("{a}a0"), vec![1, 1, c], 0.5, 0.0);
        add(format!("{a}v0"), vec![1, 1, c], 0.5, 0.0);
        add(format!("{a}k_k"), vec![1, 1, c], 0.2, 0.8);
        add(format!("{a}k_a"), vec![1, 1, c], 0.2, 1.0);
        add(format!("{a}r_k"), vec![h, shape.head_size], 0.5, 0.0);
        for (n, d) in [("w", dw), ("a", da), ("v", dv), ("g", dg)] {
            add(format!("{a}{n}1"), vec![c, d], s, 0.0);
            add(format!("{a}{n}2"), vec![d, c], 1.0 / (d as f32).sqrt(), 0.0);
        }
        for n in ["receptance", "key", "value", "output"] {
            add(format!("{a}{n}.weight"), vec![c, c], s, 0.0);
        }
        add(format!("{a}ln_x.weight"), vec![c], 0.1, 1.0);
        add(format!("{a}ln_x.bias"), vec![c], 0.1, 0.0);
        add(format!("{p}ffn.x_k"), vec![1, 1, c], 0.5, 0.5);
        add(format!("{p}ffn.key.weight"), vec![f, c], s, 0.0);
        add(format!("{p}ffn.value.weight"), vec![c, f], 1.0 / (f as f32).sqrt(), 0.0);
    }
    add("ln_out.weight".into(), vec![c], 0.1, 1.0);
    add("ln_out.bias".into(), vec![c], 0.1, 0.0);
    add("head.weight".into(), vec![shape.vocab, c], s, 0.0);
    t
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator key of tensor `name` under `seed` (FNV-1a of the name, mixed with the seed).
fn tensor_key(seed: u64, name: &str) -> u64 {
    let fnv = name.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    });
    mix(mix(seed.wrapping_add(GOLDEN)) ^ fnv)
}

/// Value `i` of a tensor with generator `key`: splitmix64 at position `i`, as a uniform float in
/// [-1, 1) with 24 bits, then `offset + scale · u`.
fn value(key: u64, i: u64, scale: f32, offset: f32) -> f32 {
    let z = mix(key.wrapping_add(i.wrapping_add(1).wrapping_mul(GOLDEN)));
    let u = ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
    offset + scale * u
}

/// f32 to bf16 bits, rounded to nearest even (the values here are finite).
fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

/// Values per parallel task.
const TASK: usize = 1 << 16;

/// Values `start..start + out.len()` of tensor `spec` under `seed`, as f32.
pub fn fill_f32(spec: &TensorSpec, seed: u64, start: usize, out: &mut [f32]) {
    let key = tensor_key(seed, &spec.name);
    out.par_chunks_mut(TASK).enumerate().for_each(|(j, chunk)| {
        let base = (start + j * TASK) as u64;
        for (i, x) in chunk.iter_mut().enumerate() {
            *x = value(key, base + i as u64, spec.scale, spec.offset);
        }
    });
}

/// Values `start..` of tensor `spec` under `seed`, as little-endian `dtype` bytes filling `out`.
pub fn fill_bytes(spec: &TensorSpec, seed: u64, start: usize, dtype: FileDType, out: &mut [u8]) {
    let key = tensor_key(seed, &spec.name);
    let size = dtype.size();
    out.par_chunks_mut(TASK * size).enumerate().for_each(|(j, chunk)| {
        let base = (start + j * TASK) as u64;
        for (i, b) in chunk.chunks_exact_mut(size).enumerate() {
            let x = value(key, base + i as u64, spec.scale, spec.offset);
            match dtype {
                FileDType::Bf16 => b.copy_from_slice(&bf16_bits(x).to_le_bytes()),
                FileDType::F32 => b.copy_from_slice(&x.to_le_bytes()),
            }
        }
    });
}

/// The safetensors header of `specs` stored as `dtype`: JSON with `__metadata__` first and the
/// tensors in file order, padded with spaces to a multiple of 8 bytes (deterministic bytes).
pub fn header(specs: &[TensorSpec], dtype: FileDType, shape: Shape, seed: u64) -> String {
    let js = |x: &str| serde_json::to_string(x).unwrap_or_else(|_| "\"\"".into());
    let mut h = format!(
        "{{\"__metadata__\":{{\"format\":\"pt\",\"generator\":{},\"seed\":\"{seed}\"}}",
        js(&format!(
            "rwkv-bench make-model L{} C{} vocab {}",
            shape.n_layer, shape.n_embd, shape.vocab
        ))
    );
    let mut offset = 0usize;
    for s in specs {
        let end = offset + s.len() * dtype.size();
        let dims: Vec<String> = s.dims.iter().map(|d| d.to_string()).collect();
        h.push_str(&format!(
            ",{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            js(&s.name),
            dtype.safetensors_name(),
            dims.join(",")
        ));
        offset = end;
    }
    h.push('}');
    while h.len() % 8 != 0 {
        h.push(' ');
    }
    h
}

/// Bytes of the file [`write_model`] writes.
pub fn file_bytes(shape: Shape, dtype: FileDType, seed: u64) -> u64 {
    let specs = v7_tensors(shape);
    let data: usize = specs.iter().map(|s| s.len() * dtype.size()).sum();
    (8 + header(&specs, dtype, shape, seed).len() + data) as u64
}

/// Values per write: 4 Mi values (8 MB of bf16) in memory at a time.
const BLOCK: usize = 1 << 22;

/// Write a random RWKV-7 checkpoint of `shape` to `path` (through `path` + `.partial`, renamed
/// when complete); returns the file's bytes.
pub fn write_model(shape: Shape, seed: u64, dtype: FileDType, path: &Path) -> anyhow::Result<u64> {
    let specs = v7_tensors(shape);
    let partial = path.with_extension("partial");
    let file = std::fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let h = header(&specs, dtype, shape, seed);
    let write = |w: &mut std::io::BufWriter<std::fs::File>, b: &[u8]| {
        w.write_all(b).with_context(|| format!("writing {}", partial.display()))
    };
    write(&mut w, &(h.len() as u64).to_le_bytes())?;
    write(&mut w, h.as_bytes())?;
    let mut buf = vec![0u8; BLOCK * dtype.size()];
    let mut total = (8 + h.len()) as u64;
    for s in &specs {
        let n = s.len();
        let mut start = 0;
        while start < n {
            let m = (n - start).min(BLOCK);
            let out = &mut buf[..m * dtype.size()];
            fill_bytes(s, seed, start, dtype, out);
            write(&mut w, out)?;
            total += out.len() as u64;
            start += m;
        }
    }
    w.into_inner()
        .map_err(|e| anyhow::anyhow!("writing {}: {}", partial.display(), e.error()))?;
    std::fs::rename(&partial, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rwkv_model::{LoadOptions, Logits, Model, Weights};

    fn tiny() -> Shape {
        Shape {
            n_layer: 2,
            n_embd: 128,
            head_size: 64,
            vocab: 512,
            lora: [32, 32, 32, 64],
        }
    }

    #[test]
    fn g1_ranks_follow_the_training_rule() {
        let ranks: Vec<[usize; 4]> = Shape::NAMES
            .iter()
            .map(|n| Shape::named(n).map(|s| s.lora))
            .collect::<Option<_>>()
            .expect("every name is a shape");
        assert_eq!(
            ranks,
            vec![
                [64, 64, 32, 128],
                [64, 64, 32, 160],
                [96, 96, 64, 256],
                [96, 96, 64, 320],
                [128, 128, 96, 480]
            ]
        );
        assert!(Shape::named("3b").is_none());
        let s = Shape::named("0.1b").expect("0.1b");
        assert_eq!(v7_tensors(s).len(), 3 + 12 * 33 + 3);
        let params: usize = v7_tensors(Shape::named("1.5b").expect("1.5b"))
            .iter()
            .map(TensorSpec::len)
            .sum();
        assert_eq!(
            file_bytes(Shape::named("1.5b").expect("1.5b"), FileDType::Bf16, 1) / 2 / 1_000_000,
            1527
        );
        assert!((1.5e9..1.6e9).contains(&(params as f64)), "{params}");
    }

    #[test]
    fn streamed_file_loads_runs_and_is_deterministic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b, c) = (
            dir.path().join("a.st"),
            dir.path().join("b.st"),
            dir.path().join("c.st"),
        );
        let bytes = write_model(tiny(), 7, FileDType::Bf16, &a).expect("write");
        write_model(tiny(), 7, FileDType::Bf16, &b).expect("write");
        write_model(tiny(), 8, FileDType::Bf16, &c).expect("write");
        let read = |p: &Path| std::fs::read(p).expect("read");
        assert_eq!(bytes, std::fs::metadata(&a).expect("meta").len());
        assert_eq!(bytes, file_bytes(tiny(), FileDType::Bf16, 7));
        assert_eq!(blake3::hash(&read(&a)), blake3::hash(&read(&b)));
        assert_ne!(blake3::hash(&read(&a)), blake3::hash(&read(&c)));

        for w in [Weights::Auto, Weights::Int8] {
            let model = Model::load_with(&a, &LoadOptions::default().with_weights(w)).expect("load");
            assert_eq!(model.held_weights(), if w == Weights::Auto { "bf16" } else { "int8" });
            let cfg = model.v7_config().expect("v7");
            assert_eq!((cfg.n_layer, cfg.n_embd, cfg.d_mv, cfg.d_gate), (2, 128, 32, 64));
            let toks: Vec<u32> = (0..40).map(|i| (i * 37) % 512).collect();
            let mut st = model.new_state();
            let logits = model.forward_seq(&toks, &mut st, Logits::Last).expect("fold");
            assert_eq!(logits.len(), 512);
            assert!(logits.iter().all(|x| x.is_finite()));
            assert!(logits.iter().any(|&x| x != 0.0));
            let next = model.forward_token(3, &mut st).expect("token");
            assert!(next.iter().all(|x| x.is_finite()));
        }
    }

    #[test]
    fn f32_file_holds_the_same_values_as_random_v7() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("m.safetensors");
        write_model(tiny(), 3, FileDType::F32, &p).expect("write");
        let file = Model::load(&p).expect("load");
        let mem = Model::from_tensors(&crate::random_v7(tiny(), 3)).expect("from tensors");
        assert_eq!(file.held_weights(), "f32");
        let toks: Vec<u32> = (0..20).collect();
        let run = |m: &Model| {
            let mut st = m.new_state();
            m.forward_seq(&toks, &mut st, Logits::Last).expect("fold")
        };
        assert_eq!(run(&file), run(&mem));
    }
}
