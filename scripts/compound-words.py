#!/usr/bin/env python3
"""Write crates/rwkv-index/src/compound-words.txt: what the index tokenizer needs to split a
compound identifier part (`getattr`, `envvar`, `asdict`, `filename`) into its words.

Counted from code and prose no QA set of this project comes from (any `toml*` crate is skipped):
  * identifier parts: words of .rs/.py/.js/.ts/.go/.java/.c/.h files under the given roots that
    have several parts (`snake_case`, `camelCase`), each part counted;
  * prose: lowercase words of .md/.rst/.txt files and of comment lines of code files, and of
    files under /usr/share/doc.

The file lists
  * `part WORD COUNT PROSE`: a word seen as a separate identifier part at least MIN_PART times
    (three letters or more, or one of a few two-letter prefixes), PROSE 1 when it is also a common
    prose word;
  * `common WORD`: a prose word of six letters or more seen at least MIN_PROSE times: such a word
    is split only where both halves are common words of four letters or more (`database`,
    `filename`), or the first is a prefix such as `sub` or `meta` (`subclass`), so English words
    (`present`, `appends`, `forget`) stay whole.

Usage: scripts/compound-words.py [ROOT ...] (default: ~/.cargo/registry/src, the Python
standard library, /usr/lib/node_modules).
"""
import collections
import os
import re
import sys

MIN_PART = 300
MIN_PROSE = 30
WORDY = 500
TWO_LETTER = {"as", "is", "fs", "kw", "io", "db", "os", "fn", "ui"}
CODE_EXT = {".rs", ".py", ".js", ".ts", ".go", ".java", ".c", ".h"}
PROSE_EXT = {".md", ".rst", ".txt"}

ident = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
camel = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
prose_word = re.compile(r"(?<![A-Za-z0-9_.])[a-z]+(?![A-Za-z0-9_(])")
comment = re.compile(r'^\s*(#|//+|\*|/\*+|"""|--)\s?(.*)$')


def files(roots):
    for root in roots:
        for dirpath, _, names in os.walk(root):
            if "/toml" in dirpath:
                continue
            for n in sorted(names):
                yield root, os.path.join(dirpath, n)


def main():
    roots = sys.argv[1:] or [
        os.path.expanduser("~/.cargo/registry/src"),
        "/usr/lib/python3.11",
        "/usr/lib/node_modules",
    ]
    parts = collections.Counter()
    prose = collections.Counter()
    for root, path in list(files(roots)) + list(files(["/usr/share/doc"])):
        ext = os.path.splitext(path)[1]
        try:
            with open(path, errors="ignore") as f:
                text = f.read(2_000_000)
        except OSError:
            continue
        if ext in CODE_EXT and root != "/usr/share/doc":
            for w in ident.findall(text):
                ps = [p.lower() for s in w.split("_") for p in camel.findall(s)]
                ps = [p for p in ps if p.isalpha()]
                if len(ps) > 1:
                    parts.update(ps)
            lines = [m.group(2) for m in map(comment.match, text.split("\n")) if m]
        elif ext in PROSE_EXT or (root == "/usr/share/doc" and ext == ""):
            lines = [l for l in text.split("\n") if not l.startswith(("    ", "\t"))]
        else:
            continue
        for line in lines:
            prose.update(prose_word.findall(re.sub(r"`[^`]*`", "", line)))
    out = [l for l in __doc__.strip().split("\n")]
    out = ["# " + l if l else "#" for l in out]
    for w, n in sorted(parts.items()):
        if n >= MIN_PART and w.isascii() and w.isalpha() and (len(w) >= 3 or w in TWO_LETTER):
            out.append(f"part {w} {n} {int(prose[w] >= WORDY)}")
    for w, n in sorted(prose.items()):
        if n >= MIN_PROSE and len(w) >= 6 and w.isascii() and w.isalpha():
            out.append(f"common {w}")
    dest = os.path.join(os.path.dirname(__file__), "..", "crates", "rwkv-index", "src", "compound-words.txt")
    with open(dest, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"{dest}: {sum(l.startswith('part') for l in out)} parts, {sum(l.startswith('common') for l in out)} common words")


if __name__ == "__main__":
    main()
