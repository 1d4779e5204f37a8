#!/usr/bin/env python3
"""The official `rwkv` pip package (torch on the CPU, strategy `cpu fp32`) on an RWKV-7
safetensors checkpoint, e.g. one written by `make-model` or `fold-bench --shape ... --keep`.

Prints one JSON line: load seconds, fold tok/s (one `forward` over N tokens), decode tok/s (one
token at a time, the argmax fed back) and peak RSS. The package reads `.pth` files only, so the
safetensors file is first converted to a torch state dict in a child process (its memory is not
counted), next to the model or in --tmp, and deleted afterwards.

When torch or rwkv cannot be imported it prints a note (`"skipped": true`) and exits 0.

    python3 benches/official.py --model /tmp/m.safetensors --tokens 512 --decode-tokens 16
"""

import argparse
import contextlib
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time


def skip(note):
    print(json.dumps({"skipped": True, "note": note}))
    sys.exit(0)


def convert(src, dst):
    """safetensors -> torch state dict (`.pth`), without the safetensors package."""
    import torch

    dtypes = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}
    with open(src, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        sd = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            a, b = info["data_offsets"]
            f.seek(base + a)
            buf = bytearray(f.read(b - a))
            t = torch.frombuffer(buf, dtype=dtypes[info["dtype"]]) if buf else torch.empty(0)
            sd[name] = t.reshape(info["shape"])
    torch.save(sd, dst)


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="an RWKV-7 .safetensors (or .pth) checkpoint")
    p.add_argument("--tokens", type=int, default=512, help="tokens of the timed fold")
    p.add_argument("--decode-tokens", type=int, default=16, help="timed decode steps")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--strategy", default="cpu fp32")
    p.add_argument("--tmp", help="folder for the converted .pth (default: beside the model)")
    p.add_argument("--convert-to", help=argparse.SUPPRESS)
    p.add_argument(
        "--omp-wait-policy",
        default="PASSIVE",
        help="OMP_WAIT_POLICY for torch's OpenMP threads (default PASSIVE: with ACTIVE, spinning "
        "threads on a shared 2-core machine made decode up to 8x slower)",
    )
    a = p.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", a.omp_wait_policy)  # read when torch loads OpenMP

    try:
        import torch
    except Exception as e:  # ImportError, or a broken install's OSError
        skip(f"torch is not importable ({type(e).__name__}: {e}); install torch and rwkv to compare")
    if a.convert_to:
        convert(a.model, a.convert_to)
        return
    os.environ.setdefault("RWKV_V7_ON", "1")  # RWKV-7 support in rwkv 0.8.x
    os.environ.setdefault("RWKV_JIT_ON", "1")
    os.environ.setdefault("RWKV_CUDA_ON", "0")
    try:
        from importlib.metadata import version

        with contextlib.redirect_stdout(sys.stderr):  # it prints banners to stdout
            from rwkv.model import RWKV
    except Exception as e:
        skip(f"the rwkv package is not importable ({type(e).__name__}: {e}); pip install rwkv")
    torch.set_num_threads(a.threads)

    tmpdir = None
    if a.model.endswith(".pth"):
        pth = a.model
    else:
        tmpdir = tempfile.mkdtemp(prefix="official-", dir=a.tmp or os.path.dirname(os.path.abspath(a.model)))
        pth = os.path.join(tmpdir, "model.pth")
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--model", a.model, "--convert-to", pth], check=True)
        print(f"converted to {pth} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    try:
        t = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            model = RWKV(model=pth[: -len(".pth")], strategy=a.strategy)
        load = time.perf_counter() - t
        vocab = model.args.vocab_size
        toks = [(i * 2654435761) % vocab for i in range(a.tokens)]
        with torch.no_grad():
            model.forward(toks[:16], None)  # warm-up
            t = time.perf_counter()
            out, state = model.forward(toks, None)
            fold = a.tokens / (time.perf_counter() - t)
            finite = bool(torch.isfinite(out).all())
            nxt = int(torch.argmax(out))
            for _ in range(2):  # untimed steps
                out, state = model.forward([nxt], state)
                nxt = int(torch.argmax(out))
            t = time.perf_counter()
            for _ in range(a.decode_tokens):
                out, state = model.forward([nxt], state)
                nxt = int(torch.argmax(out))
            decode = a.decode_tokens / (time.perf_counter() - t)
            finite = finite and bool(torch.isfinite(out).all())
    finally:
        if tmpdir:
            try:
                os.remove(pth)
            except OSError:
                pass
            os.rmdir(tmpdir)
    print(
        json.dumps(
            {
                "skipped": False,
                "package": f"rwkv {version('rwkv')}",
                "torch": torch.__version__,
                "strategy": a.strategy,
                "threads": a.threads,
                "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
                "load_seconds": load,
                "fold_tokens": a.tokens,
                "fold_tok_s": fold,
                "decode_tokens": a.decode_tokens,
                "decode_tok_s": decode,
                "peak_rss_bytes": peak_rss_bytes(),
                "logits_finite": finite,
            }
        )
    )


if __name__ == "__main__":
    main()
