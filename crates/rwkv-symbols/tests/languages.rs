mod common;

use common::{code, get, has, has_ref, lines};
use rwkv_symbols::{Lang, Method, SymbolKind as K, lang_of};

#[test]
fn all_queries_compile() {
    for lang in [
        Lang::Rust,
        Lang::Python,
        Lang::JavaScript,
        Lang::TypeScript,
        Lang::Tsx,
        Lang::Go,
        Lang::Java,
        Lang::C,
        Lang::Cpp,
    ] {
        assert_eq!(rwkv_symbols::queries_compile(lang), (true, true), "{lang:?}");
    }
}

#[test]
fn languages_by_extension() {
    assert_eq!(lang_of("a/b.rs"), Some(Lang::Rust));
    assert_eq!(lang_of("x.PYI"), Some(Lang::Python));
    assert_eq!(lang_of("x.cjs"), Some(Lang::JavaScript));
    assert_eq!(lang_of("x.mts"), Some(Lang::TypeScript));
    assert_eq!(lang_of("x.tsx"), Some(Lang::Tsx));
    assert_eq!(lang_of("x.h"), Some(Lang::C));
    assert_eq!(lang_of("x.hxx"), Some(Lang::Cpp));
    assert_eq!(lang_of("Makefile"), None);
    assert_eq!(lang_of("x.rb"), None);
}

const PY: &str = r#"import os

MAX_SIZE = 1024
default_name = "x"


@decorator
def url_for(endpoint, **values):
    """Build a URL."""
    return build(endpoint, values)


class AppContext:
    """The app context."""

    limit = 3

    def push(self):
        helper()
        self.app.do_push()

    class Inner:
        def deep(self):
            def local():
                pass
            return local
"#;

#[test]
fn python() {
    let f = code("app.py", PY);
    assert_eq!(f.method, Method::TreeSitter(Lang::Python));
    has(&f, "MAX_SIZE", K::Constant);
    has(&f, "default_name", K::Variable);
    has(&f, "url_for", K::Function);
    lines(&f, PY, "url_for", 8, 8, 10);
    has(&f, "AppContext", K::Class);
    lines(&f, PY, "AppContext", 13, 13, 26);
    has(&f, "AppContext.push", K::Method);
    lines(&f, PY, "AppContext.push", 18, 18, 20);
    has(&f, "AppContext.Inner", K::Class);
    has(&f, "AppContext.Inner.deep", K::Method);
    has(&f, "AppContext.Inner.deep.local", K::Function);
    assert!(!f.definitions.iter().any(|s| s.name == "limit"));
    has_ref(&f, "build", 10);
    has_ref(&f, "helper", 19);
    has_ref(&f, "do_push", 20);
    // Sorted by start, longer first.
    let keys: Vec<_> = f
        .definitions
        .iter()
        .map(|s| (s.byte_start, std::cmp::Reverse(s.byte_end)))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

const RS: &str = r#"use std::fmt;

/// A point.
#[derive(Debug)]
pub struct Point {
    x: i32,
}

pub enum Shape { Dot(Point) }

pub trait Area {
    fn area(&self) -> f64;
}

impl Point {
    pub fn new(x: i32) -> Self {
        Point { x }
    }
}

impl<T> fmt::Display for Wrapper<T> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", compute(1))
    }
}

pub const LIMIT: usize = 3;
static COUNTER: u32 = 0;
type Id = u64;

mod inner {
    pub fn helper() {}
}

macro_rules! square {
    ($x:expr) => { $x * $x };
}

fn main() {
    const LOCAL: u8 = 1;
    let p = Point::new(1);
    p.area();
}
"#;

#[test]
fn rust() {
    let f = code("src/lib.rs", RS);
    assert_eq!(f.method, Method::TreeSitter(Lang::Rust));
    has(&f, "Point", K::Struct);
    lines(&f, RS, "Point", 5, 5, 7);
    has(&f, "Shape", K::Enum);
    has(&f, "Area", K::Interface);
    has(&f, "Area.area", K::Method);
    let imp = f
        .definitions
        .iter()
        .find(|s| s.kind == K::Impl && s.name == "Point")
        .unwrap();
    assert_eq!((imp.line_start, imp.line_end), (15, 19));
    has(&f, "Point.new", K::Method);
    lines(&f, RS, "Point.new", 16, 16, 18);
    has(&f, "Wrapper", K::Impl);
    has(&f, "Wrapper.fmt", K::Method);
    has(&f, "LIMIT", K::Constant);
    has(&f, "COUNTER", K::Variable);
    has(&f, "Id", K::Type);
    has(&f, "inner", K::Module);
    has(&f, "inner.helper", K::Function);
    has(&f, "square", K::Macro);
    has(&f, "main", K::Function);
    assert!(!f.definitions.iter().any(|s| s.name == "LOCAL"));
    has_ref(&f, "new", 41);
    has_ref(&f, "Point", 17);
    has_ref(&f, "write", 23);
    has_ref(&f, "area", 42);
}

const JS: &str = r#"const express = require('express');

/** Makes things. */
function make(a) {
  return helper(a);
}

const add = (a, b) => a + b;
let sub = function (a, b) { return a - b; };

class Router extends Base {
  constructor() { super(); }
  route(path) {
    return this.handle(path);
  }
  onClick = () => {};
}

module.exports.foo = function () {
  return make(1);
};
exports.bar = 42;
app.get = function (req, res) {};

module.exports = {
  baz: () => 1,
  qux(x) { return x; },
};
"#;

#[test]
fn javascript() {
    let f = code("lib/index.js", JS);
    assert_eq!(f.method, Method::TreeSitter(Lang::JavaScript));
    has(&f, "make", K::Function);
    lines(&f, JS, "make", 4, 4, 6);
    has(&f, "add", K::Function);
    has(&f, "sub", K::Function);
    has(&f, "express", K::Constant);
    has(&f, "Router", K::Class);
    lines(&f, JS, "Router", 11, 11, 17);
    has(&f, "Router.route", K::Method);
    has(&f, "Router.constructor", K::Method);
    has(&f, "Router.onClick", K::Method);
    has(&f, "foo", K::Function);
    lines(&f, JS, "foo", 19, 19, 21);
    has(&f, "bar", K::Variable);
    // `app.get = function` is scoped to its object.
    has(&f, "app.get", K::Method);
    has(&f, "baz", K::Function);
    has(&f, "qux", K::Method);
    has_ref(&f, "helper", 5);
    has_ref(&f, "handle", 14);
    has_ref(&f, "make", 20);
}

#[test]
fn anonymous_default_exports_are_named_by_their_module() {
    // `export default rawHeaders => {…}` is imported as `parseHeaders`: the file's name.
    let text =
        "import x from './x.js';\n\nexport default rawHeaders => {\n  const parsed = {};\n  return parsed;\n};\n";
    let f = code("lib/helpers/parseHeaders.js", text);
    has(&f, "parseHeaders", K::Function);
    lines(&f, text, "parseHeaders", 3, 3, 6);
    // An `index` file is its folder's module; an anonymous class keeps its methods.
    let text = "export default class {\n  run(job) {\n    return job;\n  }\n}\n";
    let f = code("src/queue/index.ts", text);
    has(&f, "queue", K::Class);
    has(&f, "queue.run", K::Method);
    // A named default export keeps its own name, once.
    let text = "export default function settle(resolve) {\n  resolve();\n}\n";
    let f = code("lib/core/other.js", text);
    has(&f, "settle", K::Function);
    assert!(f.definitions.iter().all(|d| d.name != "other"), "{}", common::dump(&f));
    let text = "export default async function (req) {\n  return req;\n}\n";
    let f = code("lib/adapters/fetch.mjs", text);
    has(&f, "fetch", K::Function);
}

#[test]
fn named_functions_in_an_array_are_definitions() {
    // A list of transforms: each named function in it is found by its name.
    let text = "const defaults = {\n  transformResponse: [function transformResponse(data) {\n    return JSON.parse(data);\n  }],\n};\n";
    let f = code("lib/defaults/index.js", text);
    has(&f, "defaults", K::Constant);
    has(&f, "defaults.transformResponse", K::Function);
    lines(&f, text, "defaults.transformResponse", 2, 2, 4);
}

const TS: &str = r#"export interface User {
  id: number;
  name(): string;
}

export type Id = string | number;

export enum Color { Red, Green }

namespace Util {
  export function clamp(x: number): number { return x; }
}

export abstract class Repo<T> {
  abstract find(id: Id): T;
  save(item: T): void {
    this.store.put(item);
  }
}

export const load = async (id: Id): Promise<User> => fetchUser(id);
"#;

#[test]
fn typescript() {
    let f = code("src/repo.ts", TS);
    assert_eq!(f.method, Method::TreeSitter(Lang::TypeScript));
    has(&f, "User", K::Interface);
    lines(&f, TS, "User", 1, 1, 4);
    has(&f, "Id", K::Type);
    has(&f, "Color", K::Enum);
    has(&f, "Util", K::Module);
    has(&f, "Util.clamp", K::Function);
    has(&f, "Repo", K::Class);
    has(&f, "Repo.save", K::Method);
    lines(&f, TS, "Repo.save", 16, 16, 18);
    has(&f, "load", K::Function);
    has_ref(&f, "fetchUser", 21);

    let tsx = "export function App() {\n  return <div onClick={() => go()}>hi</div>;\n}\n";
    let f = code("App.tsx", tsx);
    assert_eq!(f.method, Method::TreeSitter(Lang::Tsx));
    has(&f, "App", K::Function);
    has_ref(&f, "go", 2);
}

const GO: &str = r#"package server

import "fmt"

const Version = "1.0"

var registry = map[string]int{}

// Server serves.
type Server struct {
	addr string
}

type Handler interface {
	Serve() error
}

type ID = string

func NewServer(addr string) *Server {
	return &Server{addr: addr}
}

func (s *Server) Start() error {
	fmt.Println(s.addr)
	return nil
}
"#;

#[test]
fn go() {
    let f = code("server.go", GO);
    assert_eq!(f.method, Method::TreeSitter(Lang::Go));
    has(&f, "Version", K::Constant);
    has(&f, "registry", K::Variable);
    has(&f, "Server", K::Struct);
    lines(&f, GO, "Server", 10, 10, 12);
    has(&f, "Handler", K::Interface);
    has(&f, "ID", K::Type);
    has(&f, "NewServer", K::Function);
    has(&f, "Server.Start", K::Method);
    lines(&f, GO, "Server.Start", 24, 24, 27);
    has_ref(&f, "Println", 25);
}

const JAVA: &str = r#"package com.example;

import java.util.List;

@Service
public class UserService implements Service {
    private final Repo repo;

    public UserService(Repo repo) {
        this.repo = repo;
    }

    @Override
    public List<User> findAll() {
        return repo.findAll();
    }

    interface Listener {
        void onEvent(Event e);
    }

    enum State { ON, OFF }
}

record Pair(int a, int b) {}

enum Step {
    First {
        void read(Reader r) { r.next(); }
    },
    Plain;
}
"#;

#[test]
fn java() {
    let f = code("UserService.java", JAVA);
    assert_eq!(f.method, Method::TreeSitter(Lang::Java));
    has(&f, "UserService", K::Class);
    lines(&f, JAVA, "UserService", 5, 6, 23);
    has(&f, "UserService.UserService", K::Method);
    has(&f, "UserService.findAll", K::Method);
    lines(&f, JAVA, "UserService.findAll", 13, 14, 16);
    has(&f, "UserService.Listener", K::Interface);
    has(&f, "UserService.Listener.onEvent", K::Method);
    has(&f, "UserService.State", K::Enum);
    has(&f, "Pair", K::Class);
    has_ref(&f, "findAll", 15);
    // An enum constant with a body scopes its methods (one `read` per state, told apart).
    has(&f, "Step.First.read", K::Method);
    assert!(!f.definitions.iter().any(|s| s.name == "Plain"), "{}", common::dump(&f));
}

const C: &str = r#"#include <stdio.h>

#define MAX 10
#define SQR(x) ((x) * (x))

struct point {
    int x, y;
};

typedef struct {
    int w;
} size_t2;

typedef int (*callback)(int);

enum color { RED, GREEN };

static const int table[] = {1, 2, 3};

static char *dup_name(const char *s) {
    return strdup(s);
}

int main(void) {
    int local = 3;
    printf("%d\n", SQR(local));
    return 0;
}

typedef struct node {
    struct node *next;
} node;

void run(node *head, int i) {
    for (;;) {
        dispatch (opcode(i)) {
            on(OP_MOVE) {
                visit(head);
                next;
            }
        }
    }
}
"#;

#[test]
fn c() {
    let f = code("main.c", C);
    assert_eq!(f.method, Method::TreeSitter(Lang::C));
    has(&f, "MAX", K::Macro);
    has(&f, "SQR", K::Macro);
    lines(&f, C, "MAX", 3, 3, 3);
    has(&f, "point", K::Struct);
    lines(&f, C, "point", 6, 6, 8);
    has(&f, "size_t2", K::Type);
    has(&f, "callback", K::Type);
    has(&f, "color", K::Enum);
    has(&f, "table", K::Constant);
    has(&f, "dup_name", K::Function);
    lines(&f, C, "dup_name", 20, 20, 22);
    has(&f, "main", K::Function);
    assert!(!f.definitions.iter().any(|s| s.name == "local"));
    has_ref(&f, "printf", 26);
    has_ref(&f, "strdup", 21);
    // A struct named like its typedef is not scoped inside it (`node`, not `node.node`).
    // A macro used as a statement inside a function is not a definition of the macro.
    has(&f, "run", K::Function);
    let macro_names = ["dispatch", "opcode", "on", "OP_MOVE"];
    assert!(
        !f.definitions.iter().any(|s| macro_names.contains(&s.name.as_str())),
        "{}",
        common::dump(&f)
    );
    for kind in [K::Type, K::Struct] {
        let found = f
            .definitions
            .iter()
            .any(|s| s.name == "node" && s.kind == kind && s.scope.is_none());
        assert!(found, "{kind:?} node\n{}", common::dump(&f));
    }
}

const CPP: &str = r#"#include <vector>

namespace geo {

template <typename T>
class Shape {
public:
    virtual double area() const = 0;
    int sides() const { return n_; }
private:
    int n_;
};

struct Point { int x; };

double Circle::area() const {
    return compute(r_);
}

using Points = std::vector<Point>;

}  // namespace geo
"#;

#[test]
fn cpp() {
    let f = code("geo.cpp", CPP);
    assert_eq!(f.method, Method::TreeSitter(Lang::Cpp));
    has(&f, "geo", K::Module);
    has(&f, "geo.Shape", K::Class);
    has(&f, "geo.Shape.sides", K::Method);
    has(&f, "geo.Point", K::Struct);
    has(&f, "geo.Circle.area", K::Method);
    lines(&f, CPP, "geo.Circle.area", 16, 16, 18);
    has(&f, "geo.Points", K::Type);
    has_ref(&f, "compute", 17);
    // A C++ header named .h.
    let f = code("shape.h", "class Shape {\n public:\n  int n() { return 1; }\n};\n");
    assert_eq!(f.method, Method::TreeSitter(Lang::Cpp));
    has(&f, "Shape.n", K::Method);
}

#[test]
fn syntax_errors_keep_definitions_before() {
    let text = "def good():\n    return 1\n\nclass Fine:\n    def ok(self):\n        pass\n\ndef broken(:\n    )))\n";
    let f = code("x.py", text);
    assert_eq!(f.method, Method::TreeSitter(Lang::Python));
    has(&f, "good", K::Function);
    has(&f, "Fine.ok", K::Method);
    let text = "fn a() -> u32 { 1 }\nstruct S { x: u32 }\nfn b( { let = ; }\n";
    let f = code("x.rs", text);
    has(&f, "a", K::Function);
    has(&f, "S", K::Struct);
    let text = "function ok() { return 1; }\nfunction bad( { {{{\n";
    let f = code("x.js", text);
    has(&f, "ok", K::Function);
    assert!(get(&f, "ok").line_start == 1);
}

#[test]
fn javascript_functions_passed_to_a_call_at_statement_level() {
    let src = "defineGetter(req, 'subdomains', function subdomains() {\n  return 1;\n});\n\ndefineGetter(req, 'fresh', function(){\n  return 2;\n});\n\napp.get('/users/:id', function (req, res) {});\ndescribe('the router', function () {});\nfunction send() {\n  file.on('headers', function headers(res) {});\n}\n";
    let f = code("lib/request.js", src);
    has(&f, "subdomains", K::Function);
    lines(&f, src, "subdomains", 1, 1, 3);
    has(&f, "fresh", K::Function);
    lines(&f, src, "fresh", 5, 5, 7);
    // A callback inside a function is no definition of the file.
    assert!(f.definitions.iter().all(|d| d.name != "headers"), "{:?}", f.definitions);
    // A path or a sentence is no name.
    assert!(
        f.definitions
            .iter()
            .all(|d| !d.name.contains('/') && !d.name.contains(' ')),
        "{:?}",
        f.definitions
    );
}

#[test]
fn a_doc_block_one_blank_line_above_joins_its_definition() {
    let src = "var x = 1;\n\n/**\n * Return the remote address.\n */\n\nfunction ip() {\n  return 1;\n}\n";
    let f = code("lib/request.js", src);
    let units = rwkv_symbols::units(src, &f, 60, 4096);
    let head = units
        .iter()
        .find(|u| u.head && u.symbol.is_some_and(|i| f.definitions[i].name == "ip"))
        .unwrap();
    assert_eq!((head.line_start, head.line_end), (3, 9), "{units:?}");
}

#[test]
fn cpp_destructor_after_a_macro_keeps_its_tilde() {
    let text = "class gil_scoped_acquire {\npublic:\n    PYBIND11_NOINLINE gil_scoped_acquire() { acquire(); }\n    PYBIND11_NOINLINE ~gil_scoped_acquire() { release(); }\n    ~plain() {}\n};\n";
    let f = code("gil.h", text);
    has(&f, "gil_scoped_acquire.~gil_scoped_acquire", K::Method);
    has(&f, "gil_scoped_acquire.gil_scoped_acquire", K::Method);
    has(&f, "gil_scoped_acquire.~plain", K::Method);
    // `a = b ~c;` is no destructor (and no definition).
    let f = code("x.cpp", "int f() { return a ~ b; }\n");
    assert!(
        f.definitions.iter().all(|s| !s.name.starts_with('~')),
        "{}",
        common::dump(&f)
    );
}

#[test]
fn cpp_class_after_an_export_macro_is_a_class_with_its_members() {
    let text = "namespace kv {\nclass KV_EXPORT DB {\n public:\n  DB() = default;\n  int Get(int k) { return k; }\n};\n\nstruct API_A API_B(2) Range final : Base {\n  int Size() const { return 1; }\n};\n\nclass SCOPED_LOCKABLE Lock\n{\n  void Release() {}\n};\n}\n";
    let f = code("db.h", text);
    has(&f, "kv.DB", K::Class);
    has(&f, "kv.DB.Get", K::Method);
    has(&f, "kv.Range", K::Struct);
    has(&f, "kv.Range.Size", K::Method);
    has(&f, "kv.Lock", K::Class);
    has(&f, "kv.Lock.Release", K::Method);
    assert!(
        f.definitions.iter().all(|s| s.kind != K::Function),
        "{}",
        common::dump(&f)
    );
    // Lines and byte offsets are those of the text as written.
    let db = f
        .definitions
        .iter()
        .find(|s| s.name == "DB" && s.kind == K::Class)
        .unwrap();
    assert_eq!((db.line_start, db.name_line), (2, 2));
    assert_eq!(&text[db.byte_start..db.byte_start + 5], "class");
    // A brace-initialized variable of an all-capitals type and a forward declaration are
    // left as they are.
    let f = code(
        "x.cpp",
        "class FWD_API Thing;\nint g() { struct S s{1}; return s.a; }\n",
    );
    assert!(
        f.definitions.iter().all(|s| s.name != "Thing" && s.name != "s"),
        "{}",
        common::dump(&f)
    );
}

#[test]
fn cpp_nested_class_defined_outside_its_class_is_scoped_by_it() {
    let text = "namespace kv {\nstruct Builder::Rep {\n  int Size() const { return 1; }\n};\nclass Block::Iter : public Iterator {\n  void Seek() {}\n};\n}\n";
    let f = code("builder.cc", text);
    has(&f, "kv.Builder.Rep", K::Struct);
    has(&f, "kv.Builder.Rep.Size", K::Method);
    has(&f, "kv.Block.Iter", K::Class);
    has(&f, "kv.Block.Iter.Seek", K::Method);
}

#[test]
fn cpp_specialization_is_named_by_its_template() {
    let text = "template <typename C>\nstruct caster<std::basic_string<C>,\n              enable_if_t<is_char<C>::value>> {\n  bool load(int h) { return h; }\n};\ntemplate <>\nclass caster<bool> {\n  bool cast() { return true; }\n};\n";
    let f = code("cast.h", text);
    assert!(
        f.definitions.iter().all(|s| !s.name.contains(['<', '\n'])),
        "{}",
        common::dump(&f)
    );
    has(&f, "caster.load", K::Method);
    has(&f, "caster.cast", K::Method);
    assert_eq!(
        f.definitions.iter().filter(|s| s.name == "caster").count(),
        2,
        "{}",
        common::dump(&f)
    );
}

/// zlib's shapes: macros in heads the grammar cannot place, and `#if` branches that each open a
/// brace. Tree-sitter loses the functions to an error node; their column-0 heads recover them.
const C_MACROS: &str = r#"#define local static
int ZEXPORT inflate(z_streamp strm, int flush) {
    int order = 1;
#ifdef GUNZIP
    if (state->wrap & 2) {
#else
    if (state->wrap) {
#endif
        order = 2;
    }
    return order;
}

local unsigned syncsearch(unsigned FAR *have, const unsigned char FAR *buf,
                          unsigned len) {
    unsigned got = *have;
    return got;
}

int ZEXPORT inflateSync(z_streamp strm) {
    return syncsearch(&strm->have, strm->next_in, 4);
}
"#;

#[test]
fn c_functions_lost_to_an_error_node_are_recovered() {
    let f = code("inflate.c", C_MACROS);
    assert_eq!(f.method, Method::TreeSitter(Lang::C));
    has(&f, "inflate", K::Function);
    lines(&f, C_MACROS, "inflate", 2, 2, 12);
    has(&f, "syncsearch", K::Function);
    lines(&f, C_MACROS, "syncsearch", 14, 14, 18);
    has(&f, "inflateSync", K::Function);
    lines(&f, C_MACROS, "inflateSync", 20, 20, 22);
    // A local of the broken function is not a definition.
    assert!(!f.definitions.iter().any(|s| s.name == "order"), "{:?}", f.definitions);
}

#[test]
fn c_and_cpp_declarations_keep_their_comments_and_scopes() {
    let text = "namespace kv {\n\n// Encode v in as few bytes as it needs.\nchar* EncodeVarint(char* dst, unsigned v);\n\nint Undocumented(int x);\n\nclass LEVELDB_EXPORT Version {\n public:\n  // Return the level at which a new memtable\n  // compaction result is placed.\n  int PickLevel(const Slice& smallest);\n\n  const Options& options() const;  // the options it was opened with\n\n  /* Release what the version holds. */\n  virtual ~Version();\n\n  int Inline() { return 1; }\n};\n\nvoid Run() {\n  // not a declaration of the file\n  int Local(int);\n}\n}  // namespace kv\n";
    let f = code("version.h", text);
    let got: Vec<(&str, u32, &str)> = f
        .declarations
        .iter()
        .map(|d| (d.name.as_str(), d.line, d.comment.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("kv.EncodeVarint", 4, "Encode v in as few bytes as it needs.\n"),
            (
                "kv.Version.PickLevel",
                12,
                "Return the level at which a new memtable\ncompaction result is placed.\n"
            ),
            ("kv.Version.options", 14, "// the options it was opened with\n"),
        ],
        "{}",
        common::dump(&f)
    );
    // A C header's prototypes, by their comments; a definition is no declaration.
    let c = code(
        "lgc.h",
        "/* Run a full collection cycle. */\nvoid luaC_fullgc(lua_State *L, int isemergency);\nstatic int twice(int x) { return 2 * x; }\n",
    );
    assert_eq!(c.declarations.len(), 1, "{:?}", c.declarations);
    assert_eq!(c.declarations[0].name, "luaC_fullgc");
    assert_eq!(c.declarations[0].comment, "Run a full collection cycle.\n");
}
