#!/usr/bin/env python3
"""Check the gold answers of the QA benchmark question sets.

usage: python3 benches/qa/check_gold.py DEST [NAME ...]

DEST is the directory that benches/qa/fetch.sh filled (DEST/<name>/ per code
base). For every benches/qa/<name>.jsonl (or only the NAMEs given) this
validates the record format, and for every answerable question opens each
gold `path[:line[-end]]` under DEST/<name>/, checks that the file and lines
exist, and prints the gold line's text so it can be eyeballed as the line
holding the name of the answering definition. Gold lines that look like a
decorator, an attribute or a comment (not a definition name line) are errors.

It also prints per-set counts: answerable, unanswerable, and answerable
questions with no identifier in them (no backticks, snake_case, camelCase,
dotted names or calls).

Exit status 0 when everything passes, 1 otherwise.
"""
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLD_RE = re.compile(r"^(?P<path>[^:]+?)(?::(?P<start>\d+)(?:-(?P<end>\d+))?)?$")
# lines that are never the name line of a definition
# (a line of annotations or decorators alone; Java's `@Nullable int[] name(` holds the name)
NOT_NAME_LINE = re.compile(r"^\s*((@[\w.]+(\(.*\))?\s*)+$|#\[|#!\[|//|/\*|\*|#(?!!)|$)")
IDENT_RE = re.compile(
    r"`"                                  # code span
    r"|\b[A-Za-z0-9]+_[A-Za-z0-9_]+\b"    # snake_case
    r"|\b[a-z]+[A-Z][A-Za-z0-9]*\b"       # camelCase
    r"|\b[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*\b"  # CamelCase
    r"|\b[A-Za-z_]\w*\.[A-Za-z_]\w*"      # dotted.name
    r"|\b\w+\("                           # call(
    r"|::"                                # rust path
)


def has_identifier(question: str) -> bool:
    return bool(IDENT_RE.search(question))


def check_set(dest: Path, name: str) -> bool:
    qfile = HERE / f"{name}.jsonl"
    root = dest / name
    ok = True
    n_ans = n_unans = n_noident = 0
    if not root.is_dir():
        print(f"ERROR {name}: code base directory {root} is missing (run fetch.sh)")
        return False
    print(f"=== {name}: {qfile.name} against {root}")
    seen = set()
    for lineno, raw in enumerate(qfile.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        where = f"{qfile.name}:{lineno}"
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError as e:
            print(f"ERROR {where}: bad JSON: {e}")
            ok = False
            continue
        q = rec.get("question")
        if not isinstance(q, str) or not q.strip():
            print(f"ERROR {where}: missing question")
            ok = False
            continue
        if q in seen:
            print(f"ERROR {where}: duplicate question")
            ok = False
        seen.add(q)
        answerable = rec.get("answerable")
        extra = set(rec) - {"question", "gold", "answerable"}
        if extra:
            print(f"ERROR {where}: unexpected keys {sorted(extra)}")
            ok = False
        if answerable is False:
            n_unans += 1
            if "gold" in rec:
                print(f"ERROR {where}: unanswerable question has gold")
                ok = False
            print(f"  [unanswerable] {q}")
            continue
        if answerable is not True:
            print(f"ERROR {where}: answerable must be true or false")
            ok = False
            continue
        n_ans += 1
        noident = not has_identifier(q)
        n_noident += noident
        print(f"  {'[plain] ' if noident else ''}{q}")
        gold = rec.get("gold")
        if not isinstance(gold, list) or not gold:
            print(f"ERROR {where}: answerable question needs a non-empty gold list")
            ok = False
            continue
        for g in gold:
            m = GOLD_RE.match(g) if isinstance(g, str) else None
            if not m:
                print(f"ERROR {where}: bad gold {g!r}")
                ok = False
                continue
            path = root / m["path"]
            if Path(m["path"]).is_absolute() or ".." in Path(m["path"]).parts:
                print(f"ERROR {where}: gold path must be relative: {g}")
                ok = False
                continue
            if not path.is_file():
                print(f"ERROR {where}: no such file {g}")
                ok = False
                continue
            if m["start"] is None:
                print(f"      {g}  (whole file)")
                continue
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            start = int(m["start"])
            end = int(m["end"]) if m["end"] else start
            if not (1 <= start <= end <= len(lines)):
                print(f"ERROR {where}: {g} is outside the file ({len(lines)} lines)")
                ok = False
                continue
            for n in range(start, end + 1):
                text = lines[n - 1]
                bad = n == start and NOT_NAME_LINE.match(text) and not m["path"].endswith((".md", ".rst", ".txt"))
                print(f"      {m['path']}:{n}: {text.strip()[:110]}{'   <-- NOT A NAME LINE' if bad else ''}")
                if bad:
                    ok = False
    print(f"--- {name}: {n_ans} answerable, {n_unans} unanswerable, "
          f"{n_noident} answerable with no identifier "
          f"({(100 * n_noident // n_ans) if n_ans else 0}%)")
    if n_ans + n_unans < 25 or n_unans < 4 or 3 * n_noident < n_ans:
        print(f"ERROR {name}: needs >= 25 questions, >= 4 unanswerable, "
              f">= 1/3 of answerable with no identifier")
        ok = False
    return ok


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    dest = Path(argv[1])
    names = argv[2:] or sorted(p.stem for p in HERE.glob("*.jsonl"))
    results = [check_set(dest, n) for n in names]
    if all(results):
        print(f"OK: all gold answers of {len(names)} set(s) check out")
        return 0
    print("FAILED")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
