//! Bad checkpoints are errors naming the file and the tensor, never panics.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::fixture;
use rwkv_model::loader::read_safetensors;
use rwkv_model::tensor::{DType, RawTensor, TensorMap};
use rwkv_model::{Error, Model};
use safetensors::tensor::TensorView;

/// A fresh folder, deleted when the test ends.
fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn base() -> TensorMap {
    read_safetensors(&fixture("models/random-x070-C64-L2-H4N16.safetensors")).unwrap()
}

/// Write `map` as safetensors, with `dtype_override` naming a raw dtype for one tensor.
fn write(map: &TensorMap, path: &Path) {
    let views: Vec<(String, TensorView<'_>)> = map
        .tensors
        .iter()
        .map(|(k, t)| {
            let dt = match t.dtype {
                DType::F32 => safetensors::Dtype::F32,
                DType::BF16 => safetensors::Dtype::BF16,
                DType::F16 => safetensors::Dtype::F16,
                DType::F64 => safetensors::Dtype::F64,
                DType::I64 => safetensors::Dtype::I64,
                DType::Ggml(q) => panic!("{k}: {q:?} blocks have no safetensors type"),
            };
            (k.clone(), TensorView::new(dt, t.shape.clone(), &t.data).unwrap())
        })
        .collect();
    safetensors::serialize_to_file(views, None::<HashMap<String, String>>, path).unwrap();
}

fn load_err(path: &Path) -> Error {
    match Model::load(path) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e,
    }
}

#[test]
fn truncated_files_are_errors() {
    let dir = tempdir();
    for src in ["random-x070-C64-L2-H4N16.safetensors", "random-x070-C64-L2-H4N16.pth"] {
        let bytes = std::fs::read(fixture(&format!("models/{src}"))).unwrap();
        for cut in [0, 3, 8, 9, 64, 1000, bytes.len() / 2, bytes.len() - 1] {
            let p = dir.path().join(format!("cut-{cut}-{src}"));
            std::fs::write(&p, &bytes[..cut]).unwrap();
            let msg = load_err(&p).to_string();
            assert!(msg.contains(&format!("cut-{cut}-{src}")), "{msg}");
        }
    }
}

#[test]
fn a_file_that_is_not_a_checkpoint_is_an_error() {
    let dir = tempdir();
    let p = dir.path().join("notes.txt");
    std::fs::write(&p, "just some text, certainly not weights\n").unwrap();
    let e = load_err(&p);
    assert!(matches!(e, Error::File(rwkv_formats::Error::Format { .. })), "{e}");
    let e = load_err(&dir.path().join("does-not-exist.pth"));
    assert!(matches!(e, Error::File(rwkv_formats::Error::Io { .. })), "{e}");
    // A valid safetensors file with no RWKV tensors.
    let mut m = TensorMap::new(&p);
    m.tensors.insert(
        "foo".into(),
        RawTensor {
            dtype: DType::F32,
            shape: vec![2],
            data: vec![0; 8].into(),
        },
    );
    let p = dir.path().join("foo.safetensors");
    write(&m, &p);
    assert!(load_err(&p).to_string().contains("emb.weight"));
}

#[test]
fn a_missing_tensor_is_named() {
    let dir = tempdir();
    let mut m = base();
    m.tensors.remove("blocks.1.att.key.weight");
    let p = dir.path().join("missing.safetensors");
    write(&m, &p);
    let e = load_err(&p);
    assert!(
        matches!(&e, Error::File(rwkv_formats::Error::MissingTensor { tensor, .. }) if tensor == "blocks.1.att.key.weight"),
        "{e}"
    );
    assert!(e.to_string().contains("missing.safetensors"));
}

#[test]
fn a_wrong_shape_is_named() {
    let dir = tempdir();
    let mut m = base();
    let t = m.tensors.get_mut("blocks.1.ffn.value.weight").unwrap();
    t.shape = vec![t.shape[1], t.shape[0]]; // transposed: same element count, wrong shape
    let p = dir.path().join("shape.safetensors");
    write(&m, &p);
    let e = load_err(&p);
    assert!(
        matches!(&e, Error::File(rwkv_formats::Error::Shape { tensor, .. }) if tensor == "blocks.1.ffn.value.weight"),
        "{e}"
    );

    let mut m = base();
    let t = m.tensors.get_mut("blocks.0.att.x_k").unwrap();
    t.shape = vec![t.shape.iter().product::<usize>() - 1];
    let short = t.data[..t.data.len() - 4].to_vec();
    t.data = short.into();
    let p = dir.path().join("shape2.safetensors");
    write(&m, &p);
    let e = load_err(&p);
    assert!(
        matches!(&e, Error::File(rwkv_formats::Error::Shape { tensor, .. }) if tensor == "blocks.0.att.x_k"),
        "{e}"
    );
}

#[test]
fn an_unknown_dtype_is_named() {
    let dir = tempdir();
    let mut m = base();
    // Rewrite one tensor as I32 by hand: build the file, then patch the header's dtype string.
    m.tensors.get_mut("blocks.0.att.w0").unwrap().dtype = DType::F32;
    let p = dir.path().join("dtype.safetensors");
    write(&m, &p);
    let mut bytes = std::fs::read(&p).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
    let key = "\"blocks.0.att.w0\":{\"dtype\":\"F32\"";
    let pos = header.find(key).expect("header layout");
    let patched = header[..pos].to_string() + &key.replace("F32", "I32") + &header[pos + key.len()..];
    bytes.splice(8..8 + n, patched.into_bytes());
    std::fs::write(&p, &bytes).unwrap();
    let e = load_err(&p);
    assert!(
        matches!(&e, Error::File(rwkv_formats::Error::DType { tensor, .. }) if tensor == "blocks.0.att.w0"),
        "{e}"
    );
}

#[test]
fn a_half_converted_checkpoint_names_the_missing_tensor() {
    // RWKV-7 tensors plus one RWKV-6 marker: read as RWKV-6, which lacks its decay tensors.
    let dir = tempdir();
    let mut m = base();
    let r_k = m
        .tensors
        .keys()
        .filter(|k| k.ends_with("att.r_k"))
        .cloned()
        .collect::<Vec<_>>();
    for k in r_k {
        m.tensors.remove(&k);
    }
    m.tensors.insert(
        "blocks.0.att.time_maa_x".into(),
        RawTensor {
            dtype: DType::F32,
            shape: vec![1, 1, 64],
            data: vec![0; 256].into(),
        },
    );
    let p = dir.path().join("v6.safetensors");
    write(&m, &p);
    let e = load_err(&p);
    assert!(
        matches!(&e, Error::File(rwkv_formats::Error::MissingTensor { tensor, .. }) if tensor.starts_with("blocks.0.att.time_")),
        "{e}"
    );
    assert!(e.to_string().contains("v6.safetensors"));
}

#[test]
fn random_corruption_never_panics() {
    let dir = tempdir();
    let bytes = std::fs::read(fixture("models/random-x070-C64-L2-H4N16.safetensors")).unwrap();
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for i in 0..200 {
        let mut b = bytes.clone();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let pos = (x as usize) % b.len().min(if i % 2 == 0 { 2048 } else { usize::MAX });
            b[pos] = (x >> 32) as u8;
        }
        let p = dir.path().join("fuzz.safetensors");
        std::fs::write(&p, &b).unwrap();
        let _ = Model::load(&p); // Ok or Err, never a panic
    }
}

#[test]
fn f16_checkpoints_load_like_their_f32_values() {
    // Round every weight to f16, save once as F16 and once as the same values in F32: the two
    // models are the same model (same fingerprint; the same logits to float rounding: the f16
    // file's matrices stay f16 and are widened inside the products).
    let dir = tempdir();
    let mut f16_map = base();
    let mut f32_map = base();
    for (name, t) in f16_map.tensors.iter_mut() {
        let vals = rwkv_model::tensor::to_f32(&fixture("x"), name, t).unwrap();
        let halves: Vec<half::f16> = vals.iter().map(|&v| half::f16::from_f32(v)).collect();
        t.dtype = DType::F16;
        t.data = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
        let back = f32_map.tensors.get_mut(name).unwrap();
        back.data = halves.iter().flat_map(|h| h.to_f32().to_le_bytes()).collect();
    }
    let (p16, p32) = (dir.path().join("m16.safetensors"), dir.path().join("m32.safetensors"));
    write(&f16_map, &p16);
    write(&f32_map, &p32);
    let (a, b) = (Model::load(&p16).unwrap(), Model::load(&p32).unwrap());
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_eq!((a.held_weights(), b.held_weights()), ("f16", "f32"));
    let toks: Vec<u32> = b"half precision".iter().map(|&x| x as u32).collect();
    let (mut sa, mut sb) = (a.new_state(), b.new_state());
    let la = a.forward_seq(&toks, &mut sa, rwkv_model::Logits::Last).unwrap();
    let lb = b.forward_seq(&toks, &mut sb, rwkv_model::Logits::Last).unwrap();
    let d = la.iter().zip(&lb).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(d < 1e-4, "{d}");
}
