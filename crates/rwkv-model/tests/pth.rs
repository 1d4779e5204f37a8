//! The PyTorch checkpoint reader: the fixture checkpoints against their safetensors twins,
//! hand-built archives for layouts and dtypes the fixtures lack, and damaged input.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use rwkv_model::Error;
use rwkv_model::loader::pth::{read_pth, read_pth_bytes};
use rwkv_model::tensor::{DType, RawTensor, TensorMap, to_f32};
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

const FIXTURES: [&str; 2] = ["tiny-rwkv-7v0-834K", "random-x070-C64-L2-H4N16"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/models")
        .join(name)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every tensor of a safetensors file as (shape, f32 values).
fn safetensors_f32(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = read(path);
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let dtype = match view.dtype() {
                safetensors::Dtype::F32 => DType::F32,
                safetensors::Dtype::F16 => DType::F16,
                safetensors::Dtype::BF16 => DType::BF16,
                safetensors::Dtype::F64 => DType::F64,
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            let raw = RawTensor {
                dtype,
                shape: view.shape().to_vec(),
                data: view.data().to_vec().into(),
            };
            let values = to_f32(path, &name, &raw).expect("convert");
            (name, (raw.shape, values))
        })
        .collect()
}

fn pth_f32(map: &TensorMap) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    map.tensors
        .iter()
        .map(|(name, t)| {
            (
                name.clone(),
                (t.shape.clone(), to_f32(&map.path, name, t).expect("convert")),
            )
        })
        .collect()
}

fn assert_same(pth: &TensorMap, st: &Path) {
    let want = safetensors_f32(st);
    let got = pth_f32(pth);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "tensor names"
    );
    for (name, (shape, values)) in &want {
        let (gs, gv) = &got[name];
        assert_eq!(gs, shape, "{name}: shape");
        assert_eq!(gv.len(), values.len(), "{name}: length");
        for (i, (a, b)) in gv.iter().zip(values).enumerate() {
            assert!(a.to_bits() == b.to_bits(), "{name}[{i}]: {a} != {b}");
        }
    }
    assert!(pth.metadata.is_empty());
}

#[test]
fn fixtures_match_safetensors() {
    for stem in FIXTURES {
        let pth = fixture(&format!("{stem}.pth"));
        let st = fixture(&format!("{stem}.safetensors"));
        let map = read_pth(&pth).expect("read_pth");
        assert_eq!(map.path, pth);
        assert!(map.tensors.values().all(|t| t.dtype == DType::F32));
        assert_same(&map, &st);
        // torch.save stores storages uncompressed: read from a file, every contiguous tensor
        // refers to the file's map instead of a copy.
        assert!(
            map.tensors
                .values()
                .all(|t| matches!(t.data, rwkv_model::tensor::Bytes::Mapped { .. })),
            "{stem}: a tensor was copied"
        );
        let from_memory = read_pth_bytes(Path::new("in-memory.pth"), &read(&pth)).expect("read_pth_bytes");
        assert_eq!(from_memory.path, Path::new("in-memory.pth"));
        assert_same(&from_memory, &st);
    }
}

// ---------------------------------------------------------------------------------------------
// Building archives

/// All entries of a zip archive, in order, decompressed.
fn entries(zip_bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(Cursor::new(zip_bytes)).expect("zip");
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).expect("entry");
            let mut data = Vec::new();
            f.read_to_end(&mut data).expect("read entry");
            (f.name().to_string(), data)
        })
        .collect()
}

fn zip_of<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>, method: CompressionMethod) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(method);
    for (name, data) in files {
        w.start_file(name, options).expect("start_file");
        w.write_all(data).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

fn rezip(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    zip_of(
        files.iter().map(|(n, d)| (n.as_str(), d.as_slice())),
        CompressionMethod::Stored,
    )
}

/// A hand-written pickle, in protocol 2 style (GLOBAL, BINUNICODE) or protocol 4 style (FRAME,
/// STACK_GLOBAL, SHORT_BINUNICODE, MEMOIZE).
struct Pickle {
    b: Vec<u8>,
    proto4: bool,
}

impl Pickle {
    fn new(proto: u8) -> Self {
        let mut b = vec![0x80, proto];
        if proto >= 4 {
            b.push(0x95);
            b.extend_from_slice(&[0; 8]); // patched in `finish`
        }
        Pickle { b, proto4: proto >= 4 }
    }
    fn op(&mut self, code: u8) -> &mut Self {
        self.b.push(code);
        self
    }
    fn memoize(&mut self) {
        if self.proto4 {
            self.b.push(0x94);
        }
    }
    fn str(&mut self, s: &str) -> &mut Self {
        if self.proto4 && s.len() < 256 {
            self.b.push(0x8c);
            self.b.push(s.len() as u8);
        } else {
            self.b.push(b'X');
            self.b.extend_from_slice(&(s.len() as u32).to_le_bytes());
        }
        self.b.extend_from_slice(s.as_bytes());
        self.memoize();
        self
    }
    fn int(&mut self, v: i64) -> &mut Self {
        match v {
            0..=0xff => self.b.extend_from_slice(&[b'K', v as u8]),
            0x100..=0xffff => {
                self.b.push(b'M');
                self.b.extend_from_slice(&(v as u16).to_le_bytes());
            }
            _ if i32::try_from(v).is_ok() => {
                self.b.push(b'J');
                self.b.extend_from_slice(&(v as i32).to_le_bytes());
            }
            _ => {
                self.b.extend_from_slice(&[0x8a, 8]);
                self.b.extend_from_slice(&v.to_le_bytes());
            }
        }
        self
    }
    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        if self.proto4 {
            self.str(module).str(name).op(0x93).memoize();
        } else {
            self.b.push(b'c');
            self.b.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
        }
        self
    }
    fn ints(&mut self, v: &[i64]) -> &mut Self {
        match v.len() {
            0 => self.op(b')'),
            1..=3 => {
                for &x in v {
                    self.int(x);
                }
                self.op(0x85 + v.len() as u8 - 1)
            }
            _ => {
                self.op(b'(');
                for &x in v {
                    self.int(x);
                }
                self.op(b't')
            }
        }
    }
    /// `_rebuild_tensor_v2(('storage', torch.<kind>, key, 'cpu', numel), offset, size, stride,
    /// False, OrderedDict())`.
    fn tensor(&mut self, kind: &str, key: &str, numel: i64, offset: i64, size: &[i64], stride: &[i64]) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2").op(b'(');
        self.op(b'(')
            .str("storage")
            .global("torch", kind)
            .str(key)
            .str("cpu")
            .int(numel)
            .op(b't')
            .op(b'Q');
        self.int(offset).ints(size).ints(stride).op(0x89);
        self.global("collections", "OrderedDict").op(b')').op(b'R');
        self.op(b't').op(b'R')
    }
    /// The same tensor wrapped in `_rebuild_parameter(tensor, True, OrderedDict())`.
    fn parameter(&mut self, kind: &str, key: &str, numel: i64, offset: i64, size: &[i64], stride: &[i64]) -> &mut Self {
        self.global("torch._utils", "_rebuild_parameter").op(b'(');
        self.tensor(kind, key, numel, offset, size, stride).op(0x88);
        self.global("collections", "OrderedDict").op(b')').op(b'R');
        self.op(b't').op(b'R')
    }
    fn finish(&mut self) -> Vec<u8> {
        self.op(b'.');
        if self.proto4 {
            let len = (self.b.len() - 11) as u64;
            self.b[3..11].copy_from_slice(&len.to_le_bytes());
        }
        std::mem::take(&mut self.b)
    }
}

/// A checkpoint archive under `archive/`, with the given pickle and storages.
fn checkpoint(pickle: &[u8], storages: &[(&str, Vec<u8>)], byteorder: &str, method: CompressionMethod) -> Vec<u8> {
    let names: Vec<String> = storages.iter().map(|(k, _)| format!("archive/data/{k}")).collect();
    let mut files: Vec<(&str, &[u8])> = vec![
        ("archive/data.pkl", pickle),
        ("archive/byteorder", byteorder.as_bytes()),
    ];
    files.extend(
        names
            .iter()
            .map(String::as_str)
            .zip(storages.iter().map(|(_, d)| d.as_slice())),
    );
    files.push(("archive/version", b"3\n"));
    zip_of(files, method)
}

fn f32_bytes(v: impl IntoIterator<Item = f32>) -> Vec<u8> {
    v.into_iter().flat_map(f32::to_le_bytes).collect()
}

fn values(map: &TensorMap, name: &str) -> Vec<f32> {
    to_f32(&map.path, name, map.get(name).expect("tensor")).expect("f32")
}

/// A state dict exercising offsets, strides, every dtype, parameters and non-tensor entries.
fn layouts_pickle(proto: u8) -> Vec<u8> {
    let mut p = Pickle::new(proto);
    p.op(b'}').op(b'(');
    p.str("full")
        .tensor("FloatStorage", "0", 24, 0, &[2, 3, 4], &[12, 4, 1]);
    p.str("slice").tensor("FloatStorage", "0", 24, 4, &[2, 4], &[4, 1]);
    p.str("transposed")
        .parameter("FloatStorage", "0", 24, 0, &[4, 3], &[1, 4]);
    p.str("strided").tensor("FloatStorage", "0", 24, 1, &[3], &[5]);
    p.str("cube")
        .tensor("FloatStorage", "0", 24, 0, &[2, 2, 2, 2], &[1, 2, 4, 8]);
    p.str("scalar").tensor("FloatStorage", "0", 24, 7, &[], &[]);
    p.str("empty").tensor("FloatStorage", "0", 24, 0, &[0, 5], &[5, 1]);
    p.str("unit_dims")
        .tensor("FloatStorage", "0", 24, 2, &[1, 4, 1], &[99, 1, 7]);
    p.str("bf16").tensor("BFloat16Storage", "1", 3, 0, &[3], &[1]);
    p.str("f16").tensor("HalfStorage", "2", 3, 0, &[1, 3], &[3, 1]);
    p.str("f64").tensor("DoubleStorage", "3", 4, 1, &[3], &[1]);
    p.str("i64").tensor("LongStorage", "4", 2, 0, &[2], &[1]);
    p.str("step")
        .int(12345)
        .str("note")
        .str("not a tensor")
        .str("flag")
        .op(0x88);
    p.op(b'u');
    p.finish()
}

fn layouts_storages() -> Vec<(&'static str, Vec<u8>)> {
    let bf16: Vec<u8> = [1.5f32, -2.0, 0.25]
        .iter()
        .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
        .collect();
    let f16: Vec<u8> = [0x3c00u16, 0xc000, 0x3800]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f64: Vec<u8> = [9.0f64, 1.0, 2.5, -3.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let i64: Vec<u8> = [7i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
    vec![
        ("0", f32_bytes((0..24).map(|i| i as f32))),
        ("1", bf16),
        ("2", f16),
        ("3", f64),
        ("4", i64),
    ]
}

#[test]
fn strided_views_and_dtypes() {
    for proto in [2, 3, 4, 5] {
        for method in [CompressionMethod::Stored, CompressionMethod::Deflated] {
            let bytes = checkpoint(&layouts_pickle(proto), &layouts_storages(), "little", method);
            let m = read_pth_bytes(Path::new("layouts.pth"), &bytes).unwrap_or_else(|e| panic!("{e}"));
            let names: Vec<&str> = m.tensors.keys().map(String::as_str).collect();
            assert_eq!(
                names,
                [
                    "bf16",
                    "cube",
                    "empty",
                    "f16",
                    "f64",
                    "full",
                    "i64",
                    "scalar",
                    "slice",
                    "strided",
                    "transposed",
                    "unit_dims"
                ]
            );
            assert_eq!(values(&m, "full"), (0..24).map(|i| i as f32).collect::<Vec<_>>());
            assert_eq!(m.tensors["full"].shape, [2, 3, 4]);
            assert_eq!(values(&m, "slice"), (4..12).map(|i| i as f32).collect::<Vec<_>>());
            assert_eq!(m.tensors["transposed"].shape, [4, 3]);
            assert_eq!(
                values(&m, "transposed"),
                [0., 4., 8., 1., 5., 9., 2., 6., 10., 3., 7., 11.]
            );
            assert_eq!(values(&m, "strided"), [1., 6., 11.]);
            // Column-major 2x2x2x2: element [a,b,c,d] = a + 2b + 4c + 8d.
            let cube: Vec<f32> = (0..16)
                .map(|i| ((i >> 3) + 2 * ((i >> 2) & 1) + 4 * ((i >> 1) & 1) + 8 * (i & 1)) as f32)
                .collect();
            assert_eq!(values(&m, "cube"), cube);
            assert_eq!(m.tensors["scalar"].shape, Vec::<usize>::new());
            assert_eq!(values(&m, "scalar"), [7.]);
            assert_eq!(m.tensors["empty"].shape, [0, 5]);
            assert!(m.tensors["empty"].data.is_empty());
            assert_eq!(values(&m, "unit_dims"), [2., 3., 4., 5.]);
            assert_eq!(m.tensors["bf16"].dtype, DType::BF16);
            assert_eq!(values(&m, "bf16"), [1.5, -2.0, 0.25]);
            assert_eq!(m.tensors["f16"].dtype, DType::F16);
            assert_eq!(m.tensors["f16"].shape, [1, 3]);
            assert_eq!(values(&m, "f16"), [1.0, -2.0, 0.5]);
            assert_eq!(m.tensors["f64"].dtype, DType::F64);
            assert_eq!(values(&m, "f64"), [1.0, 2.5, -3.0]);
            assert_eq!(m.tensors["i64"].dtype, DType::I64);
            assert_eq!(
                *m.tensors["i64"].data,
                [7i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>()
            );
            assert!(m.metadata.is_empty());
        }
    }
}

/// A single-tensor state dict `{name: tensor}`, optionally nested as `{outer: {name: ...}}`.
fn one_tensor(proto: u8, outer: &[&str], kind: &str, numel: i64, offset: i64, size: &[i64], stride: &[i64]) -> Vec<u8> {
    let mut p = Pickle::new(proto);
    p.op(b'}');
    p.str("epoch").int(3).op(b's');
    for key in outer {
        p.str(key).op(b'}');
    }
    p.str("w").tensor(kind, "0", numel, offset, size, stride).op(b's');
    for _ in outer {
        p.op(b's');
    }
    p.finish()
}

fn store(pickle: &[u8], floats: usize) -> Vec<u8> {
    checkpoint(
        pickle,
        &[("0", f32_bytes((0..floats).map(|i| i as f32)))],
        "little",
        CompressionMethod::Stored,
    )
}

fn load(bytes: &[u8]) -> rwkv_model::Result<TensorMap> {
    Ok(read_pth_bytes(Path::new("t.pth"), bytes)?)
}

#[test]
fn nested_state_dicts() {
    for outer in [&["state_dict"][..], &["model"], &["checkpoint", "module"]] {
        let m = load(&store(&one_tensor(2, outer, "FloatStorage", 4, 0, &[4], &[1]), 4)).expect("nested");
        assert_eq!(m.tensors.keys().collect::<Vec<_>>(), ["w"]);
        assert_eq!(values(&m, "w"), [0., 1., 2., 3.]);
    }
    // Preferred keys win over other dicts holding tensors.
    let mut p = Pickle::new(2);
    p.op(b'}').op(b'(');
    p.str("ema")
        .op(b'}')
        .str("e")
        .tensor("FloatStorage", "0", 4, 0, &[1], &[1])
        .op(b's');
    p.str("model")
        .op(b'}')
        .str("m")
        .tensor("FloatStorage", "0", 4, 1, &[1], &[1])
        .op(b's');
    p.op(b'u');
    let m = load(&store(&p.finish(), 4)).expect("preferred");
    assert_eq!(m.tensors.keys().collect::<Vec<_>>(), ["m"]);
    // Too deep, or no tensors at all.
    let deep = one_tensor(2, &["a", "b", "c", "d"], "FloatStorage", 4, 0, &[4], &[1]);
    assert!(matches!(
        load(&store(&deep, 4)),
        Err(Error::File(rwkv_formats::Error::Format { .. }))
    ));
    let mut p = Pickle::new(2);
    p.op(b'}').str("epoch").int(1).op(b's');
    assert!(matches!(
        load(&store(&p.finish(), 4)),
        Err(Error::File(rwkv_formats::Error::Format { .. }))
    ));
}

#[test]
fn unsupported_storage_type_names_the_tensor() {
    let bytes = store(&one_tensor(2, &[], "IntStorage", 4, 0, &[4], &[1]), 4);
    match load(&bytes) {
        Err(Error::File(rwkv_formats::Error::DType { tensor, dtype, .. })) => {
            assert_eq!(tensor, "w");
            assert_eq!(dtype, "IntStorage");
        }
        other => panic!("expected a dtype error, got {other:?}"),
    }
}

fn assert_corrupt_tensor(r: rwkv_model::Result<TensorMap>, tensor: &str) {
    match r {
        Err(e @ Error::File(rwkv_formats::Error::Corrupt { .. })) => {
            assert!(e.to_string().contains(&format!("`{tensor}`")), "{e}")
        }
        other => panic!("expected a corrupt-file error naming `{tensor}`, got {other:?}"),
    }
}

#[test]
fn views_beyond_their_storage_are_corrupt() {
    // Offset + extent past the end; strided extent past the end; overlapping (stride 0) views;
    // a storage shorter than its declared element count; a missing storage; sizes that overflow.
    let cases: [(i64, i64, &[i64], &[i64]); 7] = [
        (4, 20, &[5], &[1]),
        (4, 0, &[2, 3], &[3, 1]),
        (4, 0, &[2, 2], &[3, 1]),
        (4, 0, &[1000], &[0]),
        (8, 0, &[4], &[1]),
        (4, 0, &[2, 3], &[1]),
        (4, 0, &[1 << 40, 1 << 40], &[1, 1]),
    ];
    for (numel, offset, size, stride) in cases {
        let bytes = store(&one_tensor(2, &[], "FloatStorage", numel, offset, size, stride), 4);
        assert_corrupt_tensor(load(&bytes), "w");
    }
    let pickle = one_tensor(2, &[], "FloatStorage", 4, 0, &[4], &[1]);
    let no_storage = checkpoint(&pickle, &[], "little", CompressionMethod::Stored);
    assert_corrupt_tensor(load(&no_storage), "w");
}

#[test]
fn shared_storages() {
    // Tied weights: two names for one tensor, and a second view of the same storage.
    let mut p = Pickle::new(2);
    p.op(b'}').op(b'(');
    p.str("emb")
        .tensor("FloatStorage", "0", 8, 0, &[2, 4], &[4, 1])
        .op(b'q')
        .op(0);
    p.str("head").op(b'h').op(0);
    p.str("head_t").tensor("FloatStorage", "0", 8, 0, &[4, 2], &[1, 4]);
    p.op(b'u');
    let m = load(&store(&p.finish(), 8)).expect("tied weights");
    assert_eq!(values(&m, "emb"), values(&m, "head"));
    assert_eq!(values(&m, "head_t"), [0., 4., 1., 5., 2., 6., 3., 7.]);

    // Thousands of names viewing one large storage would need gigabytes: refused.
    let mut p = Pickle::new(2);
    p.op(b'}')
        .str("t0")
        .tensor("FloatStorage", "0", 1 << 16, 0, &[1 << 16], &[1])
        .op(b'q')
        .op(0)
        .op(b's');
    p.op(b'(');
    for i in 1..10_000 {
        p.str(&format!("t{i}")).op(b'h').op(0);
    }
    p.op(b'u');
    match load(&store(&p.finish(), 1 << 16)) {
        Err(e @ Error::File(rwkv_formats::Error::Corrupt { .. })) => {
            assert!(e.to_string().contains("viewing storage `data/0`"), "{e}")
        }
        other => panic!("expected a corrupt-file error, got {other:?}"),
    }
}

#[test]
fn big_endian_and_legacy_files_are_rejected() {
    let pickle = one_tensor(2, &[], "FloatStorage", 4, 0, &[4], &[1]);
    let big = checkpoint(&pickle, &[("0", f32_bytes([0.; 4]))], "big", CompressionMethod::Stored);
    match load(&big) {
        Err(e @ Error::File(rwkv_formats::Error::Format { .. })) => {
            assert!(e.to_string().contains("big-endian"), "{e}")
        }
        other => panic!("expected a format error, got {other:?}"),
    }
    let legacy = [
        0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
    ];
    match load(&legacy) {
        Err(e @ Error::File(rwkv_formats::Error::Format { .. })) => assert!(e.to_string().contains("legacy"), "{e}"),
        other => panic!("expected a format error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Damaged fixtures

/// A small deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn truncated_files_are_errors() {
    let path = fixture("random-x070-C64-L2-H4N16.pth");
    let bytes = read(&path);
    let n = bytes.len();
    let cuts = [
        0,
        1,
        3,
        4,
        30,
        100,
        1000,
        n / 3,
        n / 2,
        n - 1000,
        n - 100,
        n - 22,
        n - 1,
    ];
    for cut in cuts {
        let r = load(&bytes[..cut]);
        assert!(
            matches!(
                r,
                Err(Error::File(rwkv_formats::Error::Format { .. }) | Error::File(rwkv_formats::Error::Corrupt { .. }))
            ),
            "cut at {cut}: {r:?}"
        );
    }
    // The same through the file reader.
    let tmp = std::env::temp_dir().join(format!("rwkv-pth-truncated-{}.pth", std::process::id()));
    std::fs::write(&tmp, &bytes[..n / 2]).expect("write temp file");
    let r = read_pth(&tmp).map_err(Error::from);
    std::fs::remove_file(&tmp).ok();
    match r {
        Err(
            e @ (Error::File(rwkv_formats::Error::Format { .. }) | Error::File(rwkv_formats::Error::Corrupt { .. })),
        ) => {
            assert!(e.to_string().contains("rwkv-pth-truncated"))
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(matches!(
        read_pth(Path::new("/nonexistent/model.pth")).map_err(Error::from),
        Err(Error::File(rwkv_formats::Error::Io { .. }))
    ));
}

#[test]
fn random_bytes_are_errors() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for len in [0, 1, 4, 22, 100, 4096, 100_000] {
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(load(&bytes).is_err());
        // Random bytes behind a zip signature, and behind a pickle header.
        if len >= 4 {
            bytes[..4].copy_from_slice(b"PK\x03\x04");
            assert!(load(&bytes).is_err());
            bytes[..2].copy_from_slice(&[0x80, 0x02]);
            assert!(load(&bytes).is_err());
        }
    }
}

#[test]
fn zip_without_data_pkl_is_a_format_error() {
    let original = entries(&read(&fixture("random-x070-C64-L2-H4N16.pth")));
    let without: Vec<_> = original.into_iter().filter(|(n, _)| !n.ends_with("data.pkl")).collect();
    match load(&rezip(&without)) {
        Err(e @ Error::File(rwkv_formats::Error::Format { .. })) => {
            assert!(e.to_string().contains("t.pth") && e.to_string().contains("data.pkl"))
        }
        other => panic!("expected a format error, got {other:?}"),
    }
    let unrelated = zip_of([("readme.txt", &b"hello"[..])], CompressionMethod::Deflated);
    assert!(matches!(
        load(&unrelated),
        Err(Error::File(rwkv_formats::Error::Format { .. }))
    ));
}

#[test]
fn truncated_storage_is_corrupt() {
    let original = entries(&read(&fixture("tiny-rwkv-7v0-834K.pth")));
    let mut files = original.clone();
    let storage = files
        .iter_mut()
        .find(|(n, _)| n.ends_with("/data/0"))
        .expect("storage 0");
    let len = storage.1.len();
    storage.1.truncate(len - 4);
    // Storage 0 is `emb.weight` in this checkpoint.
    assert_corrupt_tensor(load(&rezip(&files)), "emb.weight");
    // Unchanged, the rebuilt archive still reads.
    assert!(load(&rezip(&original)).is_ok());
}

#[test]
fn flipped_bytes_in_the_archive_never_panic() {
    let bytes = read(&fixture("random-x070-C64-L2-H4N16.pth"));
    let mut rng = Rng(42);
    // The headers and the end of the archive, densely; the rest, at random.
    let mut positions: Vec<usize> = (0..2048).chain(bytes.len() - 4096..bytes.len()).collect();
    positions.extend((0..2000).map(|_| rng.below(bytes.len())));
    let mut copy = bytes.clone();
    for pos in positions {
        let x = (rng.next() as u8) | 1;
        copy[pos] ^= x;
        let r = load(&copy);
        if let Ok(m) = r {
            assert!(m.tensors.values().all(|t| t.data.len() == t.numel() * t.dtype.size()));
        }
        copy[pos] ^= x;
    }
}

#[test]
fn mutated_pickles_never_panic() {
    let original = entries(&read(&fixture("random-x070-C64-L2-H4N16.pth")));
    let pkl = original
        .iter()
        .position(|(n, _)| n.ends_with("data.pkl"))
        .expect("data.pkl");
    let pickle = original[pkl].1.clone();
    let mut files = original.clone();
    let mut ok = 0;
    for pos in 0..pickle.len() {
        for x in [0xff, 0x04] {
            files[pkl].1[pos] ^= x;
            if let Ok(m) = load(&rezip(&files)) {
                assert!(m.tensors.values().all(|t| t.data.len() == t.numel() * t.dtype.size()));
                ok += 1;
            }
            files[pkl].1[pos] ^= x;
        }
    }
    // Flips inside tensor names and unused memo slots leave a readable file.
    assert!(ok > 0);
}
