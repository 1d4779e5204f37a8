//! PyTorch checkpoint reader: the zip format `torch.save` writes since PyTorch 1.6.
//!
//! A checkpoint is a zip archive with one top folder (its name varies) holding `data.pkl`, a
//! pickle describing the saved object, and `data/<key>`, one raw little-endian storage per key
//! (plus `byteorder`, `version` and other small files). The pickle is run by a small virtual
//! machine that knows only the opcodes and callables torch emits. It executes nothing: tensor
//! rebuild calls become tensor descriptions, and every other call becomes an opaque value.
//!
//! The saved object must be a dict of tensors (a state dict, plain or `OrderedDict`), or a dict
//! holding one a few levels down (under `state_dict`, `model`, ...). Non-tensor entries are
//! skipped. Every length and index read from the file is checked before it is used.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;

use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive};

use crate::error::{Error, Result};
use crate::tensor::{DType, RawTensor, TensorMap};

/// Read a PyTorch zip checkpoint (`torch.save`, PyTorch 1.6 and later) from `path`.
///
/// The archive is read entry by entry, so peak memory is the tensors plus one storage.
pub fn read_pth(path: &Path) -> Result<TensorMap> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    read_archive(path, BufReader::new(file), len)
}

/// Read a PyTorch zip checkpoint held in memory; `name` is used only in error messages and as
/// [`TensorMap::path`].
pub fn read_pth_bytes(name: &Path, bytes: &[u8]) -> Result<TensorMap> {
    read_archive(name, Cursor::new(bytes), bytes.len() as u64)
}

/// Upper bound on deflate's compression ratio (the format's maximum is about 1032:1); a zip
/// entry declaring more than this many bytes per compressed byte is rejected before allocating.
const MAX_DEFLATE_RATIO: u64 = 1100;

/// How deep below the top-level dict a state dict is looked for.
const MAX_NESTING: usize = 3;

/// Longest tensor name accepted (torch names are dotted module paths, far shorter).
const MAX_NAME_LEN: usize = 4096;

/// Longest storage key accepted (torch writes decimal numbers).
const MAX_KEY_LEN: usize = 256;

/// Most dimensions a tensor may have (torch allows 64).
const MAX_DIMS: usize = 64;

/// The tensors viewing one storage may together hold at most this many times its bytes (plus
/// [`VIEW_SLACK`]); tied weights and views stay far below, while a pickle that points
/// thousands of names at one large storage is refused before it exhausts memory.
const MAX_VIEW_FACTOR: usize = 4;

/// See [`MAX_VIEW_FACTOR`].
const VIEW_SLACK: usize = 64 * 1024;

/// Keys searched first when the state dict is nested.
const PREFERRED_KEYS: [&str; 6] = ["state_dict", "model_state_dict", "model", "module", "weights", "params"];

fn read_archive<R: Read + Seek>(path: &Path, mut reader: R, file_len: u64) -> Result<TensorMap> {
    let mut head = [0u8; 4];
    let got = read_up_to(&mut reader, &mut head).map_err(|e| Error::io(path, e))?;
    if got >= 1 && head[0] == 0x80 {
        return Err(Error::format(
            path,
            "this is the legacy (before PyTorch 1.6) torch.save format, which is not supported; \
             re-save it with a recent PyTorch or convert it to safetensors",
        ));
    }
    if got < 4 || &head != b"PK\x03\x04" {
        return Err(Error::format(path, "not a zip archive, so not a PyTorch checkpoint"));
    }
    reader.seek(SeekFrom::Start(0)).map_err(|e| Error::io(path, e))?;
    let mut zip = ZipArchive::new(reader).map_err(|e| zip_error(path, "the zip directory", e))?;

    let prefix = find_prefix(&zip).ok_or_else(|| {
        Error::format(
            path,
            "the zip archive has no data.pkl, so it is not a PyTorch checkpoint",
        )
    })?;

    if let Some(index) = zip.index_for_name(&format!("{prefix}byteorder")) {
        let order = read_entry(&mut zip, path, index, "byteorder", file_len, 64)?;
        match String::from_utf8_lossy(&order).trim() {
            "little" => {}
            "big" => {
                return Err(Error::format(path, "big-endian checkpoints are not supported"));
            }
            other => return Err(Error::corrupt(path, format!("unknown byteorder `{other}`"))),
        }
    }

    let pkl_name = format!("{prefix}data.pkl");
    let index = zip
        .index_for_name(&pkl_name)
        .ok_or_else(|| Error::format(path, "the zip archive has no data.pkl"))?;
    let pickle = read_entry(&mut zip, path, index, "data.pkl", file_len, u64::MAX)?;
    let (root, arena) = Machine::new(&pickle).run().map_err(|e| e.into_error(path))?;
    let tensors = collect_tensors(path, &root, &arena)?;
    drop(arena);
    drop(pickle);

    // Read each storage once and cut every tensor that views it out of it.
    let mut by_storage: BTreeMap<&str, Vec<(&String, &TensorRef)>> = BTreeMap::new();
    for (name, t) in &tensors {
        by_storage.entry(&t.storage.key).or_default().push((name, t));
    }
    let mut map = TensorMap::new(path);
    for (key, users) in by_storage {
        let mut dtypes = Vec::with_capacity(users.len());
        for (name, t) in &users {
            match &t.storage.kind {
                StorageKind::Known(dtype) => dtypes.push(*dtype),
                StorageKind::Other(kind) => {
                    return Err(Error::DType {
                        path: path.to_path_buf(),
                        tensor: (*name).clone(),
                        dtype: kind.to_string(),
                    });
                }
            }
        }
        let first = users.first().map(|(name, _)| name.as_str()).unwrap_or_default();
        let entry = format!("{prefix}data/{key}");
        let index = zip
            .index_for_name(&entry)
            .ok_or_else(|| Error::corrupt(path, format!("storage `data/{key}` of tensor `{first}` is missing")))?;
        let what = format!("storage `data/{key}`");
        let mut bytes = Some(read_entry(&mut zip, path, index, &what, file_len, u64::MAX)?);
        let sole = users.len() == 1;
        let budget = bytes
            .as_ref()
            .map_or(0, Vec::len)
            .saturating_mul(MAX_VIEW_FACTOR)
            .saturating_add(VIEW_SLACK);
        let mut spent = 0usize;
        for ((name, t), dtype) in users.into_iter().zip(dtypes) {
            let storage = bytes.as_deref().unwrap_or_default();
            let corrupt = |reason: String| Error::corrupt(path, format!("tensor `{name}`: {reason}"));
            let declared = t.storage.numel.checked_mul(dtype.size() as u64);
            if declared.is_none_or(|d| d > storage.len() as u64) {
                return Err(corrupt(format!(
                    "storage `data/{key}` holds {} bytes, fewer than its {} {} elements",
                    storage.len(),
                    t.storage.numel,
                    dtype.name()
                )));
            }
            let layout = check_layout(t, dtype.size(), storage.len()).map_err(corrupt)?;
            spent = spent.saturating_add(layout.numel * dtype.size());
            if spent > budget {
                return Err(corrupt(format!(
                    "the tensors viewing storage `data/{key}` ({} bytes) would take {spent} bytes",
                    storage.len()
                )));
            }
            let data = match layout.contiguous {
                Some(range) if sole && range.start == 0 => {
                    let mut owned = bytes.take().unwrap_or_default();
                    owned.truncate(range.end);
                    owned
                }
                Some(range) => {
                    let src = storage.get(range).ok_or_else(|| corrupt("view out of bounds".into()))?;
                    let mut out = alloc(src.len()).map_err(corrupt)?;
                    out.extend_from_slice(src);
                    out
                }
                None => gather(storage, dtype.size(), t, &layout).map_err(corrupt)?,
            };
            map.tensors.insert(
                name.clone(),
                RawTensor {
                    dtype,
                    shape: layout.shape,
                    data,
                },
            );
        }
    }
    Ok(map)
}

/// Read into `buf` until it is full or the input ends; returns the bytes read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The archive folder holding `data.pkl` (with its trailing slash), preferring the shallowest.
fn find_prefix<R: Read + Seek>(zip: &ZipArchive<R>) -> Option<String> {
    zip.file_names()
        .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .min_by_key(|n| n.matches('/').count())
        .map(|n| n[..n.len() - "data.pkl".len()].to_string())
}

/// An empty vector able to hold `len` bytes, or an error if that much memory is unavailable.
fn alloc(len: usize) -> Result<Vec<u8>, String> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| format!("{len} bytes do not fit in memory"))?;
    Ok(v)
}

/// Read one whole entry, checking its declared size against the file size and `max_len`
/// before allocating.
fn read_entry<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    path: &Path,
    index: usize,
    what: &str,
    file_len: u64,
    max_len: u64,
) -> Result<Vec<u8>> {
    let entry = zip.by_index(index).map_err(|e| zip_error(path, what, e))?;
    let size = entry.size();
    let packed = entry.compressed_size();
    let bound = match entry.compression() {
        CompressionMethod::Stored => packed,
        _ => packed.saturating_mul(MAX_DEFLATE_RATIO),
    };
    if packed > file_len || size > bound {
        return Err(Error::corrupt(
            path,
            format!("{what} declares {size} bytes ({packed} compressed) in a file of {file_len} bytes"),
        ));
    }
    if size > max_len {
        return Err(Error::corrupt(
            path,
            format!("{what} is {size} bytes, more than the {max_len} expected"),
        ));
    }
    let len = usize::try_from(size).map_err(|_| Error::corrupt(path, format!("{what} is too large")))?;
    let mut data = alloc(len).map_err(|r| Error::corrupt(path, format!("{what}: {r}")))?;
    entry
        .take(size.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|e| zip_io_error(path, what, e))?;
    if data.len() != len {
        return Err(Error::corrupt(
            path,
            format!("{what} holds {} bytes, its header says {size}", data.len()),
        ));
    }
    Ok(data)
}

fn zip_io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::UnexpectedEof | ErrorKind::InvalidData | ErrorKind::InvalidInput | ErrorKind::Other => {
            Error::corrupt(path, format!("reading {what}: {e}"))
        }
        _ => Error::io(path, e),
    }
}

fn zip_error(path: &Path, what: &str, e: ZipError) -> Error {
    match e {
        ZipError::Io(e) => zip_io_error(path, what, e),
        other => Error::corrupt(path, format!("reading {what}: {other}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Tensor layout

/// Where a tensor's elements lie in its storage.
struct Layout {
    /// The shape as `usize`.
    shape: Vec<usize>,
    /// Strides as `usize`.
    stride: Vec<usize>,
    /// Element offset into the storage.
    offset: usize,
    /// Element count.
    numel: usize,
    /// The byte range in the storage when the view is contiguous and row-major.
    contiguous: Option<std::ops::Range<usize>>,
}

/// Check that `t` fits in a storage of `storage_len` bytes of `elem`-byte elements.
fn check_layout(t: &TensorRef, elem: usize, storage_len: usize) -> Result<Layout, String> {
    if t.size.len() != t.stride.len() {
        return Err(format!("{} sizes but {} strides", t.size.len(), t.stride.len()));
    }
    let too_big = || "shape, stride or offset out of range".to_string();
    let to_usize = |v: u64| usize::try_from(v).map_err(|_| too_big());
    let shape = t.size.iter().map(|&v| to_usize(v)).collect::<Result<Vec<_>, _>>()?;
    let stride = t.stride.iter().map(|&v| to_usize(v)).collect::<Result<Vec<_>, _>>()?;
    let offset = to_usize(t.offset)?;
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(too_big)?;
    let elems = storage_len / elem;
    if numel == 0 {
        return Ok(Layout {
            shape,
            stride,
            offset,
            numel,
            contiguous: Some(0..0),
        });
    }
    // The last element the view touches.
    let last = shape
        .iter()
        .zip(&stride)
        .try_fold(offset, |acc, (&d, &s)| {
            (d - 1).checked_mul(s).and_then(|x| acc.checked_add(x))
        })
        .ok_or_else(too_big)?;
    if last >= elems {
        return Err(format!(
            "its view (offset {offset}, shape {shape:?}, stride {stride:?}) reaches element {last}, \
             but its storage holds {elems}"
        ));
    }
    if numel > elems {
        return Err(format!(
            "{numel} elements viewed in a storage of {elems} (overlapping strides are not supported)"
        ));
    }
    let mut expected = 1usize;
    let mut contiguous = true;
    for (&d, &s) in shape.iter().zip(&stride).rev() {
        if d != 1 && s != expected {
            contiguous = false;
            break;
        }
        expected *= d; // cannot overflow: bounded by numel
    }
    // In bounds: offset + numel <= last + 1 <= elems when contiguous.
    let contiguous = contiguous.then(|| offset * elem..(offset + numel) * elem);
    Ok(Layout {
        shape,
        stride,
        offset,
        numel,
        contiguous,
    })
}

/// Copy a strided view into contiguous row-major bytes.
fn gather(src: &[u8], elem: usize, t: &TensorRef, layout: &Layout) -> Result<Vec<u8>, String> {
    let mut out = alloc(layout.numel * elem)?;
    let nd = layout.shape.len();
    let oob = || format!("view of tensor with storage `{}` out of bounds", t.storage.key);
    // `check_layout` returns a contiguous layout for 0-d and empty tensors, so nd >= 1 here.
    let (&inner_n, outer_shape) = layout.shape.split_last().ok_or_else(oob)?;
    let (&inner_s, outer_stride) = layout.stride.split_last().ok_or_else(oob)?;
    let mut idx = vec![0usize; nd - 1];
    loop {
        let base = layout.offset + idx.iter().zip(outer_stride).map(|(i, s)| i * s).sum::<usize>();
        if inner_s == 1 {
            out.extend_from_slice(src.get(base * elem..(base + inner_n) * elem).ok_or_else(oob)?);
        } else {
            for i in 0..inner_n {
                let p = (base + i * inner_s) * elem;
                out.extend_from_slice(src.get(p..p + elem).ok_or_else(oob)?);
            }
        }
        // Advance the outer multi-index, last dimension fastest.
        let mut d = nd - 1;
        loop {
            if d == 0 {
                return Ok(out);
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < outer_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Finding the state dict

/// The tensors of the state dict in `root`, by name.
fn collect_tensors(path: &Path, root: &Value, arena: &[Obj]) -> Result<BTreeMap<String, TensorRef>> {
    let dict = find_tensor_dict(root, arena).map_err(|r| Error::format(path, r))?;
    let mut found: BTreeMap<&Rc<str>, &Value> = BTreeMap::new();
    if let Some(Obj::Dict(entries)) = arena.get(dict) {
        for (k, v) in entries {
            if let (Value::Str(name), Value::Tensor(_) | Value::Unsupported(_)) = (k, v) {
                if name.len() > MAX_NAME_LEN {
                    return Err(Error::corrupt(
                        path,
                        format!("a tensor name is {} bytes long", name.len()),
                    ));
                }
                found.insert(name, v);
            }
        }
    }
    let mut tensors = BTreeMap::new();
    for (name, v) in found {
        match v {
            Value::Tensor(t) => {
                tensors.insert(name.to_string(), TensorRef::clone(t));
            }
            Value::Unsupported(g) => {
                return Err(Error::format(
                    path,
                    format!(
                        "tensor `{name}` is stored by {}.{}, which this reader does not support",
                        g.module, g.name
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(tensors)
}

fn holds_tensors(entries: &[(Value, Value)]) -> bool {
    entries
        .iter()
        .any(|(k, v)| matches!((k, v), (Value::Str(_), Value::Tensor(_) | Value::Unsupported(_))))
}

/// The arena index of the first dict (breadth first, preferred keys first) holding tensors.
fn find_tensor_dict(root: &Value, arena: &[Obj]) -> Result<usize, String> {
    let Value::Obj(root) = root else {
        return Err("data.pkl does not hold a dict of tensors".into());
    };
    if !matches!(arena.get(*root), Some(Obj::Dict(_))) {
        return Err("data.pkl does not hold a dict of tensors".into());
    }
    let mut queue = VecDeque::from([(*root, 0usize)]);
    let mut seen = HashSet::from([*root]);
    while let Some((index, depth)) = queue.pop_front() {
        let Some(Obj::Dict(entries)) = arena.get(index) else {
            continue;
        };
        if holds_tensors(entries) {
            return Ok(index);
        }
        if depth >= MAX_NESTING {
            continue;
        }
        let mut preferred = Vec::new();
        let mut others = Vec::new();
        for (k, v) in entries {
            if let (Value::Str(key), Value::Obj(i)) = (k, v)
                && matches!(arena.get(*i), Some(Obj::Dict(_)))
            {
                if PREFERRED_KEYS.contains(&&**key) {
                    preferred.push(*i)
                } else {
                    others.push(*i)
                }
            }
        }
        for i in preferred.into_iter().chain(others) {
            if seen.insert(i) {
                queue.push_back((i, depth + 1));
            }
        }
    }
    Err("data.pkl holds no tensors (expected a state dict of tensors)".into())
}

// ---------------------------------------------------------------------------------------------
// The pickle machine

/// The element type of a storage, as torch names its storage class.
#[derive(Debug, Clone)]
enum StorageKind {
    Known(DType),
    Other(Rc<str>),
}

/// A storage, as a persistent id names it.
#[derive(Debug)]
struct StorageRef {
    kind: StorageKind,
    key: Rc<str>,
    numel: u64,
}

/// A tensor: a strided view of a storage.
#[derive(Debug, Clone)]
struct TensorRef {
    storage: Rc<StorageRef>,
    offset: u64,
    size: Vec<u64>,
    stride: Vec<u64>,
}

/// A pickle value. Containers live in an arena and are referred to by index, so values are
/// cheap to copy, sharing follows Python's semantics, and nothing recurses (no deep drops).
#[derive(Debug, Clone)]
enum Value {
    /// None, booleans, floats, bytes, integers beyond i64: never inspected.
    Scalar,
    Int(i64),
    Str(Rc<str>),
    Global(Rc<Global>),
    Obj(usize),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    /// A tensor rebuilt by a torch function this reader does not model.
    Unsupported(Rc<Global>),
}

/// A class or function, by module and name.
#[derive(Debug)]
struct Global {
    module: Rc<str>,
    name: Rc<str>,
}

#[derive(Debug)]
enum Obj {
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// An instance of a class we do not model.
    Opaque,
}

/// Why the pickle could not be run, with the byte offset of the opcode.
struct PickleError {
    at: usize,
    unsupported: bool,
    reason: String,
}

impl PickleError {
    fn into_error(self, path: &Path) -> Error {
        let reason = format!("data.pkl at byte {}: {}", self.at, self.reason);
        if self.unsupported {
            Error::format(path, reason)
        } else {
            Error::corrupt(path, reason)
        }
    }
}

/// A failure inside one opcode; the machine adds the offset.
enum Fail {
    Corrupt(String),
    Unsupported(String),
}

type Step<T = ()> = std::result::Result<T, Fail>;

fn bad<T>(reason: impl Into<String>) -> Step<T> {
    Err(Fail::Corrupt(reason.into()))
}

mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const FLOAT: u8 = b'F';
    pub const INT: u8 = b'I';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const LONG: u8 = b'L';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const GET: u8 = b'g';
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const PUT: u8 = b'p';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const NEWOBJ_EX: u8 = 0x92;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
    pub const BYTEARRAY8: u8 = 0x96;
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    /// Stack lengths at each open MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    arena: Vec<Obj>,
}

impl<'a> Machine<'a> {
    fn new(data: &'a [u8]) -> Self {
        Machine {
            data,
            pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            arena: Vec::new(),
        }
    }

    /// Run to STOP; returns the pickled object and the arena its containers live in.
    fn run(mut self) -> std::result::Result<(Value, Vec<Obj>), PickleError> {
        loop {
            let at = self.pos;
            match self.step() {
                Ok(Some(root)) => return Ok((root, self.arena)),
                Ok(None) => {}
                Err(Fail::Corrupt(reason)) => {
                    return Err(PickleError {
                        at,
                        unsupported: false,
                        reason,
                    });
                }
                Err(Fail::Unsupported(reason)) => {
                    return Err(PickleError {
                        at,
                        unsupported: true,
                        reason,
                    });
                }
            }
        }
    }

    // -- input

    fn take(&mut self, n: usize) -> Step<&'a [u8]> {
        let data: &'a [u8] = self.data;
        match self.pos.checked_add(n).and_then(|end| data.get(self.pos..end)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => bad("truncated pickle"),
        }
    }
    fn array<const N: usize>(&mut self) -> Step<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Step<u8> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Step<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Step<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> Step<i32> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Step<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A length field, checked against the remaining input before anything is allocated.
    fn len_bytes(&mut self, n: u64) -> Step<&'a [u8]> {
        match usize::try_from(n) {
            Ok(n) => self.take(n),
            Err(_) => bad("length beyond the end of the pickle"),
        }
    }
    /// A text line, without its newline.
    fn line(&mut self) -> Step<&'a [u8]> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        match rest.iter().position(|&b| b == b'\n') {
            Some(n) => {
                let line = self.take(n)?;
                self.pos += 1;
                Ok(line)
            }
            None => bad("truncated pickle (unterminated line)"),
        }
    }
    fn utf8(bytes: &[u8]) -> Step<Rc<str>> {
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Rc::from(s)),
            Err(_) => bad("string is not valid UTF-8"),
        }
    }
    fn line_str(&mut self) -> Step<Rc<str>> {
        let line = self.line()?;
        Self::utf8(line)
    }

    // -- stack

    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }
    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }
    fn pop(&mut self) -> Step<Value> {
        if self.stack.len() <= self.floor() {
            return bad("stack underflow");
        }
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => bad("stack underflow"),
        }
    }
    fn top(&self) -> Step<&Value> {
        if self.stack.len() <= self.floor() {
            return bad("stack underflow");
        }
        match self.stack.last() {
            Some(v) => Ok(v),
            None => bad("stack underflow"),
        }
    }
    fn pop_mark(&mut self) -> Step<Vec<Value>> {
        match self.marks.pop() {
            Some(mark) if mark <= self.stack.len() => Ok(self.stack.split_off(mark)),
            _ => bad("no MARK to pop to"),
        }
    }
    fn alloc(&mut self, obj: Obj) -> Value {
        self.arena.push(obj);
        Value::Obj(self.arena.len() - 1)
    }
    /// The arena object on top of the stack.
    fn top_obj(&mut self) -> Step<&mut Obj> {
        let index = match self.top()? {
            Value::Obj(i) => *i,
            _ => return bad("container operation on a value that is not a container"),
        };
        match self.arena.get_mut(index) {
            Some(obj) => Ok(obj),
            None => bad("bad object reference"),
        }
    }
    fn tuple_items(&self, v: &Value) -> Option<&[Value]> {
        match v {
            Value::Obj(i) => match self.arena.get(*i) {
                Some(Obj::Tuple(items) | Obj::List(items)) => Some(items),
                _ => None,
            },
            _ => None,
        }
    }
    fn memo_get(&mut self, key: u32) -> Step {
        match self.memo.get(&key) {
            Some(v) => {
                let v = v.clone();
                self.push(v);
                Ok(())
            }
            None => bad(format!("memo key {key} was never stored")),
        }
    }
    fn memo_put(&mut self, key: u32) -> Step {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Value>) -> Step {
        if !items.len().is_multiple_of(2) {
            return bad("SETITEMS with an odd number of items");
        }
        match self.top_obj()? {
            Obj::Dict(entries) => {
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    entries.push((k, v));
                }
                Ok(())
            }
            Obj::Opaque => Ok(()),
            _ => bad("SETITEM on a value that is not a dict"),
        }
    }
    fn append_items(&mut self, items: Vec<Value>) -> Step {
        match self.top_obj()? {
            Obj::List(list) => {
                list.extend(items);
                Ok(())
            }
            Obj::Opaque => Ok(()),
            _ => bad("APPEND on a value that is not a list"),
        }
    }

    /// Execute one opcode; returns the result at STOP.
    fn step(&mut self) -> Step<Option<Value>> {
        let code = self.u8()?;
        match code {
            op::PROTO => {
                let version = self.u8()?;
                if version > 5 {
                    return Err(Fail::Unsupported(format!("pickle protocol {version}")));
                }
            }
            op::FRAME => {
                self.u64()?; // a size hint only
            }
            op::STOP => return self.pop().map(Some),
            op::MARK => self.marks.push(self.stack.len()),
            op::POP => {
                if self.stack.len() > self.floor() {
                    self.pop()?;
                } else {
                    self.pop_mark()?;
                }
            }
            op::POP_MARK => {
                self.pop_mark()?;
            }
            op::DUP => {
                let v = self.top()?.clone();
                self.push(v);
            }

            // scalars
            op::NONE | op::NEWTRUE | op::NEWFALSE => self.push(Value::Scalar),
            op::BININT => {
                let v = self.i32()?;
                self.push(Value::Int(v.into()));
            }
            op::BININT1 => {
                let v = self.u8()?;
                self.push(Value::Int(v.into()));
            }
            op::BININT2 => {
                let v = self.u16()?;
                self.push(Value::Int(v.into()));
            }
            op::LONG1 => {
                let n = self.u8()?;
                let bytes = self.take(n.into())?;
                self.push(long_value(bytes));
            }
            op::LONG4 => {
                let n = self.i32()?;
                let n = u64::try_from(n).or_else(|_| bad("negative LONG4 length"))?;
                let bytes = self.len_bytes(n)?;
                self.push(long_value(bytes));
            }
            op::INT | op::LONG => {
                let line = self.line()?;
                let text = std::str::from_utf8(line).unwrap_or_default();
                let text = text.strip_suffix('L').unwrap_or(text);
                let v = match text {
                    "00" | "01" => Value::Scalar, // protocol 0 booleans
                    _ => match text.parse::<i64>() {
                        Ok(v) => Value::Int(v),
                        Err(_)
                            if !text.is_empty() && text.trim_start_matches('-').bytes().all(|b| b.is_ascii_digit()) =>
                        {
                            Value::Scalar
                        }
                        Err(_) => return bad("malformed integer"),
                    },
                };
                self.push(v);
            }
            op::BINFLOAT => {
                self.take(8)?;
                self.push(Value::Scalar);
            }
            op::FLOAT => {
                self.line()?;
                self.push(Value::Scalar);
            }

            // strings and bytes
            op::BINUNICODE => {
                let n = self.u32()?;
                let s = Self::utf8(self.len_bytes(n.into())?)?;
                self.push(Value::Str(s));
            }
            op::SHORT_BINUNICODE => {
                let n = self.u8()?;
                let s = Self::utf8(self.len_bytes(n.into())?)?;
                self.push(Value::Str(s));
            }
            op::BINUNICODE8 => {
                let n = self.u64()?;
                let s = Self::utf8(self.len_bytes(n)?)?;
                self.push(Value::Str(s));
            }
            op::BINSTRING => {
                // Python 2 `str`, decoded as Latin-1.
                let n = self.i32()?;
                let n = u64::try_from(n).or_else(|_| bad("negative BINSTRING length"))?;
                let s: String = self.len_bytes(n)?.iter().map(|&b| char::from(b)).collect();
                self.push(Value::Str(Rc::from(s)));
            }
            op::SHORT_BINSTRING => {
                let n = self.u8()?;
                let s: String = self.len_bytes(n.into())?.iter().map(|&b| char::from(b)).collect();
                self.push(Value::Str(Rc::from(s)));
            }
            op::BINBYTES => {
                let n = self.u32()?;
                self.len_bytes(n.into())?;
                self.push(Value::Scalar);
            }
            op::SHORT_BINBYTES => {
                let n = self.u8()?;
                self.len_bytes(n.into())?;
                self.push(Value::Scalar);
            }
            op::BINBYTES8 | op::BYTEARRAY8 => {
                let n = self.u64()?;
                self.len_bytes(n)?;
                self.push(Value::Scalar);
            }

            // containers
            op::EMPTY_DICT => {
                let v = self.alloc(Obj::Dict(Vec::new()));
                self.push(v);
            }
            op::EMPTY_LIST | op::EMPTY_SET => {
                let v = self.alloc(Obj::List(Vec::new()));
                self.push(v);
            }
            op::EMPTY_TUPLE => {
                let v = self.alloc(Obj::Tuple(Vec::new()));
                self.push(v);
            }
            op::TUPLE => {
                let items = self.pop_mark()?;
                let v = self.alloc(Obj::Tuple(items));
                self.push(v);
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = usize::from(code - op::TUPLE1) + 1;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                let v = self.alloc(Obj::Tuple(items));
                self.push(v);
            }
            op::LIST | op::FROZENSET => {
                let items = self.pop_mark()?;
                let v = self.alloc(Obj::List(items));
                self.push(v);
            }
            op::DICT => {
                let items = self.pop_mark()?;
                if !items.len().is_multiple_of(2) {
                    return bad("DICT with an odd number of items");
                }
                let mut entries = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    entries.push((k, v));
                }
                let v = self.alloc(Obj::Dict(entries));
                self.push(v);
            }
            op::SETITEM => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.set_items(vec![k, v])?;
            }
            op::SETITEMS => {
                let items = self.pop_mark()?;
                self.set_items(items)?;
            }
            op::APPEND => {
                let v = self.pop()?;
                self.append_items(vec![v])?;
            }
            op::APPENDS | op::ADDITEMS => {
                let items = self.pop_mark()?;
                self.append_items(items)?;
            }

            // memo
            op::BINPUT => {
                let k = self.u8()?;
                self.memo_put(k.into())?;
            }
            op::LONG_BINPUT => {
                let k = self.u32()?;
                self.memo_put(k)?;
            }
            op::PUT => {
                let k = self
                    .line_str()?
                    .parse::<u32>()
                    .or_else(|_| bad("malformed PUT index"))?;
                self.memo_put(k)?;
            }
            op::MEMOIZE => {
                let k = u32::try_from(self.memo.len()).or_else(|_| bad("memo overflow"))?;
                self.memo_put(k)?;
            }
            op::BINGET => {
                let k = self.u8()?;
                self.memo_get(k.into())?;
            }
            op::LONG_BINGET => {
                let k = self.u32()?;
                self.memo_get(k)?;
            }
            op::GET => {
                let k = self
                    .line_str()?
                    .parse::<u32>()
                    .or_else(|_| bad("malformed GET index"))?;
                self.memo_get(k)?;
            }

            // objects
            op::GLOBAL => {
                let module = self.line_str()?;
                let name = self.line_str()?;
                self.push(Value::Global(Rc::new(Global { module, name })));
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (module, name) {
                    (Value::Str(module), Value::Str(name)) => {
                        self.push(Value::Global(Rc::new(Global { module, name })));
                    }
                    _ => return bad("STACK_GLOBAL needs two strings"),
                }
            }
            op::REDUCE => {
                let args = self.pop()?;
                let func = self.pop()?;
                let v = self.call(&func, &args, 0)?;
                self.push(v);
            }
            op::BUILD => {
                // Sets an object's state; nothing we model needs it.
                self.pop()?;
                self.top()?;
            }
            op::NEWOBJ => {
                self.pop()?;
                self.pop()?;
                let v = self.alloc(Obj::Opaque);
                self.push(v);
            }
            op::NEWOBJ_EX => {
                self.pop()?;
                self.pop()?;
                self.pop()?;
                let v = self.alloc(Obj::Opaque);
                self.push(v);
            }
            op::BINPERSID => {
                let pid = self.pop()?;
                let v = self.persistent_load(&pid)?;
                self.push(v);
            }
            other => {
                return Err(Fail::Unsupported(format!("unsupported pickle opcode 0x{other:02x}")));
            }
        }
        Ok(None)
    }

    /// `('storage', torch.XStorage, key, location, numel)` → a storage reference.
    fn persistent_load(&self, pid: &Value) -> Step<Value> {
        let Some(items) = self.tuple_items(pid) else {
            return bad("persistent id is not a tuple");
        };
        let [Value::Str(tag), ty, key, _location, numel] = items else {
            return bad("persistent id is not a ('storage', type, key, location, numel) tuple");
        };
        if &**tag != "storage" {
            return Err(Fail::Unsupported(format!("persistent id of kind `{tag}`")));
        }
        let kind = match ty {
            Value::Global(g) => match &*g.name {
                "FloatStorage" => StorageKind::Known(DType::F32),
                "HalfStorage" => StorageKind::Known(DType::F16),
                "BFloat16Storage" => StorageKind::Known(DType::BF16),
                "DoubleStorage" => StorageKind::Known(DType::F64),
                "LongStorage" => StorageKind::Known(DType::I64),
                _ => StorageKind::Other(Rc::clone(&g.name)),
            },
            _ => return bad("storage type is not a class"),
        };
        let key = match key {
            Value::Str(s) if s.len() <= MAX_KEY_LEN => Rc::clone(s),
            Value::Str(_) => return bad("storage key too long"),
            Value::Int(i) => Rc::from(i.to_string()),
            _ => return bad("storage key is not a string"),
        };
        let numel = match numel {
            Value::Int(n) => u64::try_from(*n).or_else(|_| bad("negative storage size"))?,
            _ => return bad("storage size is not an integer"),
        };
        Ok(Value::Storage(Rc::new(StorageRef { kind, key, numel })))
    }

    /// Model a call of `func(*args)`: tensor and parameter rebuilds and dict construction;
    /// anything else becomes an opaque object. Arguments are only borrowed, so a large tuple
    /// passed again and again costs nothing per call.
    fn call(&mut self, func: &Value, args: &Value, depth: usize) -> Step<Value> {
        let Value::Global(g) = func else {
            return bad("REDUCE of a value that is not callable");
        };
        let g = Rc::clone(g);
        let Some(items) = self.tuple_items(args) else {
            return bad("REDUCE arguments are not a tuple");
        };
        match (&*g.module, &*g.name) {
            // torch fills state dicts with SETITEMS after an argument-less call.
            ("collections", "OrderedDict") | ("builtins" | "__builtin__", "dict") => {
                Ok(self.alloc(Obj::Dict(Vec::new())))
            }
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => self.rebuild_tensor(items),
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => match items.first() {
                Some(v @ (Value::Tensor(_) | Value::Unsupported(_))) => Ok(v.clone()),
                _ => bad(format!("{} of something that is not a tensor", g.name)),
            },
            ("torch._tensor", "_rebuild_from_type_v2" | "_rebuild_from_type") => {
                // (func, type, args, state): the tensor is func(*args).
                if depth >= 4 {
                    return bad("tensor rebuild calls nested too deeply");
                }
                match (items.first().cloned(), items.get(2).cloned()) {
                    (Some(f), Some(a)) => self.call(&f, &a, depth + 1),
                    _ => bad(format!("{} with too few arguments", g.name)),
                }
            }
            (m, n) if m.starts_with("torch") && n.starts_with("_rebuild") => Ok(Value::Unsupported(g)),
            _ => Ok(self.alloc(Obj::Opaque)),
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks, ...)`.
    fn rebuild_tensor(&self, args: &[Value]) -> Step<Value> {
        let [Value::Storage(storage), Value::Int(offset), size, stride, ..] = args else {
            return bad("malformed tensor rebuild arguments");
        };
        let ints = |v: &Value| -> Step<Vec<u64>> {
            let Some(items) = self.tuple_items(v) else {
                return bad("tensor size or stride is not a tuple");
            };
            if items.len() > MAX_DIMS {
                return bad(format!("tensor with {} dimensions", items.len()));
            }
            items
                .iter()
                .map(|x| match x {
                    Value::Int(i) => u64::try_from(*i).or_else(|_| bad("negative tensor size or stride")),
                    _ => bad("tensor size or stride is not an integer"),
                })
                .collect()
        };
        let offset = u64::try_from(*offset).or_else(|_| bad("negative storage offset"))?;
        Ok(Value::Tensor(Rc::new(TensorRef {
            storage: Rc::clone(storage),
            offset,
            size: ints(size)?,
            stride: ints(stride)?,
        })))
    }
}

/// A little-endian two's complement integer (LONG1/LONG4).
fn long_value(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    let fill = if negative { 0xff } else { 0 };
    let (low, high) = bytes.split_at(bytes.len().min(8));
    if high.iter().any(|&b| b != fill) {
        return Value::Scalar; // beyond i64
    }
    let mut buf = [fill; 8];
    buf[..low.len()].copy_from_slice(low);
    let v = i64::from_le_bytes(buf);
    // With more than 8 bytes, the sign of the low 8 must agree with the fill.
    if bytes.len() > 8 && (v < 0) != negative {
        return Value::Scalar;
    }
    Value::Int(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values() {
        let int = |b: &[u8]| match long_value(b) {
            Value::Int(i) => Some(i),
            _ => None,
        };
        assert_eq!(int(&[]), Some(0));
        assert_eq!(int(&[0xff]), Some(-1));
        assert_eq!(int(&[0x80, 0x00]), Some(128));
        assert_eq!(int(&[0x00, 0x00, 0x00, 0x00, 0x01]), Some(1 << 32));
        assert_eq!(int(&[0xff; 9]), Some(-1));
        assert_eq!(int(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0]), None);
        assert_eq!(int(&[0, 0, 0, 0, 0, 0, 0, 0, 1]), None);
    }

    /// Pickles built to exhaust the stack, memory or time finish quickly.
    #[test]
    fn hostile_pickles_stay_bounded() {
        // A million nested tuples: no recursion when building or dropping them.
        let mut deep = vec![0x80, 2, b')'];
        deep.extend(std::iter::repeat_n(0x85, 1_000_000));
        deep.push(b'.');
        let (root, arena) = Machine::new(&deep).run().unwrap_or_else(|e| panic!("{}", e.reason));
        assert!(collect_tensors(Path::new("x"), &root, &arena).is_err());

        // One large argument tuple and one large string, reused 200k times through the memo.
        let mut p = vec![0x80, 2, b'('];
        p.extend(std::iter::repeat_n([b'K', 1], 100_000).flatten());
        p.extend([b't', b'q', 0, b'0']);
        p.extend(b"ccollections\nOrderedDict\nq\x01");
        p.push(b'X');
        p.extend(1_000_000u32.to_le_bytes());
        p.extend(std::iter::repeat_n(b'a', 1_000_000));
        p.extend([b'q', 2, b'0']);
        for _ in 0..200_000 {
            p.extend([b'h', 1, b'h', 0, b'R', b'0', b'h', 2, b'h', 2, 0x93, b'0']);
        }
        p.extend([b'}', b'.']);
        let start = std::time::Instant::now();
        assert!(Machine::new(&p).run().is_ok());
        assert!(start.elapsed().as_secs() < 10);

        // Lengths beyond the input are refused before allocating.
        for bad in [
            &[0x80, 4, 0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f][..],
            &[b'X', 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(Machine::new(bad).run().is_err());
        }
    }

    /// Every single-byte change of a real checkpoint's pickle runs to a result or an error.
    #[test]
    fn mutated_pickles_never_panic() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/models/random-x070-C64-L2-H4N16.pth"
        );
        let Ok(bytes) = std::fs::read(path) else {
            panic!("fixture {path} missing")
        };
        let mut zip = ZipArchive::new(Cursor::new(&bytes[..])).expect("zip");
        let prefix = find_prefix(&zip).expect("data.pkl");
        let mut pickle = Vec::new();
        zip.by_name(&format!("{prefix}data.pkl"))
            .expect("entry")
            .read_to_end(&mut pickle)
            .expect("read");
        let (root, arena) = Machine::new(&pickle).run().unwrap_or_else(|e| panic!("{}", e.reason));
        assert_eq!(
            collect_tensors(Path::new("x"), &root, &arena).expect("tensors").len(),
            72
        );
        let mut ok = 0;
        for pos in 0..pickle.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut m = pickle.clone();
                m[pos] ^= x;
                if let Ok((root, arena)) = Machine::new(&m).run() {
                    ok += usize::from(collect_tensors(Path::new("x"), &root, &arena).is_ok());
                }
            }
            // Truncation at every point.
            assert!(Machine::new(&pickle[..pos]).run().is_err());
        }
        assert!(ok > 0);
    }
}
