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

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive};

use crate::error::{Error, Result};
use crate::tensor::{Bytes, RawTensor, TensorMap};

use super::pickle::*;

/// Read a PyTorch zip checkpoint (`torch.save`, PyTorch 1.6 and later) from `path`.
///
/// The file is memory-mapped: storages written uncompressed (as `torch.save` writes them) are
/// not copied, each contiguous tensor refers to its range of the map
/// ([`crate::tensor::Bytes::Mapped`]). Compressed storages and strided views are read into
/// memory entry by entry, so peak memory is those tensors plus one storage.
pub fn read_pth(path: &Path) -> Result<TensorMap> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len == 0 {
        // An empty file cannot be mapped; it is reported like any other non-zip file.
        return read_archive(path, BufReader::new(file), len, None);
    }
    // SAFETY: the map is read-only. A file truncated by another process while mapped could
    // fault, the documented risk of memory-mapping any file (as for safetensors).
    let map = Arc::new(unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?);
    read_archive(path, Cursor::new(&map[..]), len, Some(&map))
}

/// Read a PyTorch zip checkpoint held in memory; `name` is used only in error messages and as
/// [`TensorMap::path`].
pub fn read_pth_bytes(name: &Path, bytes: &[u8]) -> Result<TensorMap> {
    read_archive(name, Cursor::new(bytes), bytes.len() as u64, None)
}

/// Upper bound on deflate's compression ratio (the format's maximum is about 1032:1); a zip
/// entry declaring more than this many bytes per compressed byte is rejected before allocating.
const MAX_DEFLATE_RATIO: u64 = 1100;

/// How deep below the top-level dict a state dict is looked for.
const MAX_NESTING: usize = 3;

/// Longest tensor name accepted (torch names are dotted module paths, far shorter).
const MAX_NAME_LEN: usize = 4096;

/// Longest storage key accepted (torch writes decimal numbers).
pub(super) const MAX_KEY_LEN: usize = 256;

/// Most dimensions a tensor may have (torch allows 64).
pub(super) const MAX_DIMS: usize = 64;

/// The tensors viewing one storage may together hold at most this many times its bytes (plus
/// [`VIEW_SLACK`]); tied weights and views stay far below, while a pickle that points
/// thousands of names at one large storage is refused before it exhausts memory.
const MAX_VIEW_FACTOR: usize = 4;

/// See [`MAX_VIEW_FACTOR`].
const VIEW_SLACK: usize = 64 * 1024;

/// Keys searched first when the state dict is nested.
const PREFERRED_KEYS: [&str; 6] = ["state_dict", "model_state_dict", "model", "module", "weights", "params"];

/// Where one storage's bytes are: read into memory (taken by its sole tensor when that
/// tensor is the whole storage) or a range of the file's map.
enum Storage {
    Owned(Option<Vec<u8>>),
    Mapped { start: usize, len: usize },
}

/// Read the archive `reader` (of `file_len` bytes); with `map` (whose contents the reader
/// reads), uncompressed storages are referred to instead of copied.
fn read_archive<R: Read + Seek>(
    path: &Path,
    mut reader: R,
    file_len: u64,
    map: Option<&Arc<memmap2::Mmap>>,
) -> Result<TensorMap> {
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
    let mut tensors_out = TensorMap::new(path);
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
        let mut bytes = match map.and_then(|m| stored_range(&mut zip, index, m.len())) {
            Some((start, len)) => Storage::Mapped { start, len },
            None => Storage::Owned(Some(read_entry(&mut zip, path, index, &what, file_len, u64::MAX)?)),
        };
        let sole = users.len() == 1;
        let storage_len = match &bytes {
            Storage::Owned(b) => b.as_ref().map_or(0, Vec::len),
            Storage::Mapped { len, .. } => *len,
        };
        let budget = storage_len.saturating_mul(MAX_VIEW_FACTOR).saturating_add(VIEW_SLACK);
        let mut spent = 0usize;
        for ((name, t), dtype) in users.into_iter().zip(dtypes) {
            let storage: &[u8] = match &bytes {
                Storage::Owned(b) => b.as_deref().unwrap_or_default(),
                Storage::Mapped { start, len } => map.map_or(&[][..], |m| &m[*start..*start + *len]),
            };
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
            let take = sole
                && matches!(&layout.contiguous, Some(r) if r.start == 0)
                && matches!(&bytes, Storage::Owned(Some(_)));
            let data: Bytes = match (layout.contiguous.clone(), &mut bytes) {
                (Some(range), Storage::Owned(owned)) if take => {
                    let mut owned = owned.take().unwrap_or_default();
                    owned.truncate(range.end);
                    owned.into()
                }
                (Some(range), Storage::Mapped { start, len }) if range.end <= *len => Bytes::Mapped {
                    map: Arc::clone(map.expect("a mapped storage comes from a map")),
                    start: *start + range.start,
                    len: range.len(),
                },
                (contiguous, bytes) => {
                    let storage: &[u8] = match bytes {
                        Storage::Owned(b) => b.as_deref().unwrap_or_default(),
                        Storage::Mapped { start, len } => map.map_or(&[][..], |m| &m[*start..*start + *len]),
                    };
                    match contiguous {
                        Some(range) => {
                            let src = storage.get(range).ok_or_else(|| corrupt("view out of bounds".into()))?;
                            let mut out = alloc(src.len()).map_err(corrupt)?;
                            out.extend_from_slice(src);
                            out.into()
                        }
                        None => gather(storage, dtype.size(), t, &layout).map_err(corrupt)?.into(),
                    }
                }
            };
            tensors_out.tensors.insert(
                name.clone(),
                RawTensor {
                    dtype,
                    shape: layout.shape,
                    data,
                },
            );
        }
    }
    Ok(tensors_out)
}

/// The byte range in the file of entry `index` when it is stored uncompressed and lies
/// inside the file's `file_len` bytes; `None` sends the entry to [`read_entry`], which checks
/// and reports whatever is wrong with it.
fn stored_range<R: Read + Seek>(zip: &mut ZipArchive<R>, index: usize, file_len: usize) -> Option<(usize, usize)> {
    let entry = zip.by_index(index).ok()?;
    if entry.compression() != CompressionMethod::Stored || entry.compressed_size() != entry.size() {
        return None;
    }
    let start = usize::try_from(entry.data_start()).ok()?;
    let len = usize::try_from(entry.size()).ok()?;
    (start.checked_add(len)? <= file_len).then_some((start, len))
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
