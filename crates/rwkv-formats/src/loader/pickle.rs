//! A small, bounded pickle machine for `torch.save` archives: only the opcodes and globals
//! PyTorch writes are understood, nothing is ever executed, every length is checked and
//! containers live in a flat arena so hostile nesting cannot overflow the stack.

use std::collections::HashMap;
use std::rc::Rc;

use std::path::Path;

use crate::error::Error;
use crate::tensor::DType;

use super::pth::{MAX_DIMS, MAX_KEY_LEN};

// ---------------------------------------------------------------------------------------------
// The pickle machine

/// The element type of a storage, as torch names its storage class.
#[derive(Debug, Clone)]
pub(super) enum StorageKind {
    Known(DType),
    Other(Rc<str>),
}

/// A storage, as a persistent id names it.
#[derive(Debug)]
pub(super) struct StorageRef {
    pub(super) kind: StorageKind,
    pub(super) key: Rc<str>,
    pub(super) numel: u64,
}

/// A tensor: a strided view of a storage.
#[derive(Debug, Clone)]
pub(super) struct TensorRef {
    pub(super) storage: Rc<StorageRef>,
    pub(super) offset: u64,
    pub(super) size: Vec<u64>,
    pub(super) stride: Vec<u64>,
}

/// A pickle value. Containers live in an arena and are referred to by index, so values are
/// cheap to copy, sharing follows Python's semantics, and nothing recurses (no deep drops).
#[derive(Debug, Clone)]
pub(super) enum Value {
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
pub(super) struct Global {
    pub(super) module: Rc<str>,
    pub(super) name: Rc<str>,
}

#[derive(Debug)]
pub(super) enum Obj {
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// An instance of a class we do not model.
    Opaque,
}

/// Why the pickle could not be run, with the byte offset of the opcode.
pub(super) struct PickleError {
    pub(super) at: usize,
    pub(super) unsupported: bool,
    pub(super) reason: String,
}

impl PickleError {
    pub(super) fn into_error(self, path: &Path) -> Error {
        let reason = format!("data.pkl at byte {}: {}", self.at, self.reason);
        if self.unsupported {
            Error::format(path, reason)
        } else {
            Error::corrupt(path, reason)
        }
    }
}

/// A failure inside one opcode; the machine adds the offset.
pub(super) enum Fail {
    Corrupt(String),
    Unsupported(String),
}

pub(super) type Step<T = ()> = std::result::Result<T, Fail>;

pub(super) fn bad<T>(reason: impl Into<String>) -> Step<T> {
    Err(Fail::Corrupt(reason.into()))
}

pub(super) mod op {
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

pub(super) struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    /// Stack lengths at each open MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    arena: Vec<Obj>,
}

impl<'a> Machine<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
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
    pub(super) fn run(mut self) -> std::result::Result<(Value, Vec<Obj>), PickleError> {
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

    pub(super) fn take(&mut self, n: usize) -> Step<&'a [u8]> {
        let data: &'a [u8] = self.data;
        match self.pos.checked_add(n).and_then(|end| data.get(self.pos..end)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => bad("truncated pickle"),
        }
    }
    pub(super) fn array<const N: usize>(&mut self) -> Step<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    pub(super) fn u8(&mut self) -> Step<u8> {
        Ok(self.array::<1>()?[0])
    }
    pub(super) fn u16(&mut self) -> Step<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(super) fn u32(&mut self) -> Step<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(super) fn i32(&mut self) -> Step<i32> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    pub(super) fn u64(&mut self) -> Step<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A length field, checked against the remaining input before anything is allocated.
    pub(super) fn len_bytes(&mut self, n: u64) -> Step<&'a [u8]> {
        match usize::try_from(n) {
            Ok(n) => self.take(n),
            Err(_) => bad("length beyond the end of the pickle"),
        }
    }
    /// A text line, without its newline.
    pub(super) fn line(&mut self) -> Step<&'a [u8]> {
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
    pub(super) fn utf8(bytes: &[u8]) -> Step<Rc<str>> {
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Rc::from(s)),
            Err(_) => bad("string is not valid UTF-8"),
        }
    }
    pub(super) fn line_str(&mut self) -> Step<Rc<str>> {
        let line = self.line()?;
        Self::utf8(line)
    }

    // -- stack

    pub(super) fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }
    pub(super) fn push(&mut self, v: Value) {
        self.stack.push(v);
    }
    pub(super) fn pop(&mut self) -> Step<Value> {
        if self.stack.len() <= self.floor() {
            return bad("stack underflow");
        }
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => bad("stack underflow"),
        }
    }
    pub(super) fn top(&self) -> Step<&Value> {
        if self.stack.len() <= self.floor() {
            return bad("stack underflow");
        }
        match self.stack.last() {
            Some(v) => Ok(v),
            None => bad("stack underflow"),
        }
    }
    pub(super) fn pop_mark(&mut self) -> Step<Vec<Value>> {
        match self.marks.pop() {
            Some(mark) if mark <= self.stack.len() => Ok(self.stack.split_off(mark)),
            _ => bad("no MARK to pop to"),
        }
    }
    pub(super) fn alloc(&mut self, obj: Obj) -> Value {
        self.arena.push(obj);
        Value::Obj(self.arena.len() - 1)
    }
    /// The arena object on top of the stack.
    pub(super) fn top_obj(&mut self) -> Step<&mut Obj> {
        let index = match self.top()? {
            Value::Obj(i) => *i,
            _ => return bad("container operation on a value that is not a container"),
        };
        match self.arena.get_mut(index) {
            Some(obj) => Ok(obj),
            None => bad("bad object reference"),
        }
    }
    pub(super) fn tuple_items(&self, v: &Value) -> Option<&[Value]> {
        match v {
            Value::Obj(i) => match self.arena.get(*i) {
                Some(Obj::Tuple(items) | Obj::List(items)) => Some(items),
                _ => None,
            },
            _ => None,
        }
    }
    pub(super) fn memo_get(&mut self, key: u32) -> Step {
        match self.memo.get(&key) {
            Some(v) => {
                let v = v.clone();
                self.push(v);
                Ok(())
            }
            None => bad(format!("memo key {key} was never stored")),
        }
    }
    pub(super) fn memo_put(&mut self, key: u32) -> Step {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    pub(super) fn set_items(&mut self, items: Vec<Value>) -> Step {
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
    pub(super) fn append_items(&mut self, items: Vec<Value>) -> Step {
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
    pub(super) fn step(&mut self) -> Step<Option<Value>> {
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
    pub(super) fn persistent_load(&self, pid: &Value) -> Step<Value> {
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
    pub(super) fn call(&mut self, func: &Value, args: &Value, depth: usize) -> Step<Value> {
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
    pub(super) fn rebuild_tensor(&self, args: &[Value]) -> Step<Value> {
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
pub(super) fn long_value(bytes: &[u8]) -> Value {
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
