#!/usr/bin/env python3
"""Convert an RWKV-7 checkpoint in safetensors (BlinkDL tensor names, as the G1 models are published and as
`make-model` writes them) to a GGUF file llama.cpp loads (architecture `rwkv7`).

No torch, no transformers: it needs only numpy and the `gguf` package (gguf-py 0.19.0 from PyPI, the same
package that lives in llama.cpp's `gguf-py/`). The safetensors header is parsed here and the tensor bytes
are memory-mapped, so a bf16 file is written to a bf16 GGUF with the same bits.

What llama.cpp expects (read from its `convert_hf_to_gguf.py` Rwkv7Model and `src/models/rwkv7.cpp`):
  * matrices stay in the file's precision (`--outtype bf16`): emb, head, att.{receptance,key,value,output},
    ffn.{key,value}, and the LoRA factors a1/a2/v1/v2/g1/g2;
  * 1-D tensors (norms, w0/a0/v0/k_k/k_a/ffn.x_k, r_k flattened), the decay LoRA w1/w2 and the six token-
    shift mixes (x_r x_w x_k x_v x_a x_g stacked into `time_mix_lerp_fused`, ggml shape {C,1,1,6}) are F32
    (widening bf16 to f32 is exact);
  * every LoRA factor is transposed (BlinkDL keeps w1 as [C, rank], ggml wants {C, rank} = numpy [rank, C]);
  * layer 0 has no value-residual LoRA in use, but llama.cpp still loads v0/v1/v2 there with the shape of
    a0/a1/a2: the converter writes a copy of a0/a1/a2 (the file's own dummy layer-0 v* are dropped);
  * the rwkv world vocabulary (`rwkv_vocab_v20230424.txt`): token 0 `<s>` (CONTROL), then each token's bytes
    written as Python's bytes repr without the b'' (llama.cpp unescapes it), padded with `[PADn]` UNUSED up
    to the embedding rows; bos = eos = 0, eot = 261 ("\\n\\n"), chat template `rwkv-world`.

Usage:
  python to_gguf.py MODEL.safetensors MODEL-bf16.gguf [--outtype auto|bf16|f16|f32] [--vocab PATH] [--check]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import struct
import sys
import time
from pathlib import Path

import numpy as np

try:
    import gguf
except ImportError:  # pragma: no cover
    sys.exit("to_gguf.py needs the `gguf` package: pip install gguf==0.19.0 numpy")

HERE = Path(__file__).resolve().parent
DEFAULT_VOCAB_CANDIDATES = [
    HERE.parent.parent / "crates" / "rwkv-tokenizers" / "vocab" / "rwkv_vocab_v20230424.txt",
    Path("/work/shared/fixtures/vocab/rwkv_vocab_v20230424.txt"),
]

# llama.cpp's models/templates/llama-cpp-rwkv-world.jinja, which its converter puts into every RWKV world
# GGUF (used by llama-server's /v1/chat/completions): "User: ...\n\nAssistant:" after a <s> bos.
RWKV_WORLD_TEMPLATE = r"""{%- if not add_generation_prompt is defined -%}
    {%- set add_generation_prompt = true -%}
{%- endif -%}
{%- set ns = namespace(system_prompt='') -%}
{%- for message in messages -%}
    {%- if message['role'] == 'system' -%}
        {%- set ns.system_prompt = message['content'] -%}
    {%- endif -%}
{%- endfor -%}
{{bos_token}}
{%- if ns.system_prompt != '' -%}
{{- 'System: ' + ns.system_prompt + '\n\n' -}}
{%- endif -%}
{%- for message in messages -%}
    {%- if message['role'] == 'user' -%}
        {{- 'User: ' + message['content']|trim + '\n\n' -}}
    {%- endif -%}
    {%- if message['role'] == 'assistant' and message['content'] is  not none -%}
        {%- set content = message['content'] -%}
        {%- if '</think>' in content -%}
            {%- set content = content.split('</think>')[-1] -%}
        {%- endif -%}
        {{- 'Assistant: ' + content|trim + '\n\n' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- 'Assistant:' -}}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- ' <think>\n</think>' }}
    {%- endif %}
    {%- if enable_thinking is defined and enable_thinking is true %}
        {{- ' <think>' }}
    {%- endif %}
{%- endif -%}"""

QT = gguf.GGMLQuantizationType

# ---------------------------------------------------------------------------------------------------------
# safetensors, read by hand (numpy has no bfloat16, so the `safetensors` numpy loader refuses bf16 files)


class SafeTensors:
    DTYPES = {"BF16": (np.uint16, 2), "F16": (np.float16, 2), "F32": (np.float32, 4)}

    def __init__(self, path: Path):
        self.path = path
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        self.metadata = header.pop("__metadata__", {}) or {}
        self.base = 8 + n
        self.header = header
        self.mm = np.memmap(path, dtype=np.uint8, mode="r")

    def names(self):
        return list(self.header)

    def dtype(self, name: str) -> str:
        return self.header[name]["dtype"]

    def shape(self, name: str) -> list[int]:
        return list(self.header[name]["shape"])

    def raw(self, name: str) -> np.ndarray:
        """The tensor as stored: uint16 bit patterns for BF16, float16 or float32 otherwise (a view)."""
        info = self.header[name]
        if info["dtype"] not in self.DTYPES:
            raise SystemExit(f"{name}: dtype {info['dtype']} not supported (BF16, F16, F32)")
        np_dtype, size = self.DTYPES[info["dtype"]]
        start, end = info["data_offsets"]
        buf = self.mm[self.base + start: self.base + end]
        return buf.view(np_dtype).reshape(info["shape"])


def bf16_bits_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round to nearest even, as torch does; NaN stays NaN."""
    n = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    nan = (n & 0x7FFFFFFF) > 0x7F800000
    r = ((n.astype(np.uint64) + (0x7FFF + ((n >> 16) & 1))) >> 16).astype(np.uint16)
    r[nan] = ((n[nan] >> 16) | 0x40).astype(np.uint16)
    return r


def as_f32(st: SafeTensors, name: str) -> np.ndarray:
    a = st.raw(name)
    if st.dtype(name) == "BF16":
        return bf16_bits_to_f32(a)
    return a.astype(np.float32)


def as_type(st: SafeTensors, name: str, qt: QT) -> np.ndarray:
    """The tensor in ggml type `qt` (F32, F16 or BF16 bit patterns); bf16->bf16 is the stored bits (a view)."""
    src = st.dtype(name)
    if qt == QT.F32:
        return as_f32(st, name)
    if qt == QT.BF16:
        return st.raw(name) if src == "BF16" else f32_to_bf16_bits(as_f32(st, name))
    if qt == QT.F16:
        return st.raw(name) if src == "F16" else as_f32(st, name).astype(np.float16)
    raise ValueError(qt)


# ---------------------------------------------------------------------------------------------------------
# vocabulary


def read_world_vocab(path: Path, vocab_size: int):
    tokens: list[bytes] = [b"<s>"]
    types: list[int] = [gguf.TokenType.CONTROL]
    with open(path, "r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split(" ")
            idx = int(parts[0])
            tok = ast.literal_eval(" ".join(parts[1:-1]))
            tok = tok.encode("utf-8") if isinstance(tok, str) else tok
            if not isinstance(tok, bytes) or len(tok) != int(parts[-1]):
                raise SystemExit(f"{path}:{lineno}: bad vocabulary line")
            if idx != len(tokens):
                raise SystemExit(f"{path}:{lineno}: token id {idx}, expected {len(tokens)}")
            tokens.append(repr(tok)[2:-1].encode("utf-8"))  # b'\xff' -> \xff, unescaped by llama.cpp
            types.append(gguf.TokenType.NORMAL)
    if len(tokens) > vocab_size:
        raise SystemExit(f"vocabulary has {len(tokens)} tokens, the embedding only {vocab_size} rows")
    for i in range(len(tokens), vocab_size):
        tokens.append(f"[PAD{i}]".encode("utf-8"))
        types.append(gguf.TokenType.UNUSED)
    return tokens, types


# ---------------------------------------------------------------------------------------------------------
# the model


LORA = ("w1", "w2", "a1", "a2", "v1", "v2", "g1", "g2")
LERPS = ("r", "w", "k", "v", "a", "g")  # order of time_mix_lerp_fused


def tname(t: gguf.MODEL_TENSOR, bid: int | None = None, suffix: str = "weight") -> str:
    return gguf.TENSOR_NAMES[t].format(bid=bid) + "." + suffix


def plan(st: SafeTensors, outtype: str):
    """Yield (gguf name, source names, function giving the array, ggml type) for every tensor to write."""
    names = set(st.names())
    n_layer = 1 + max(int(m.group(1)) for n in names if (m := re.match(r"blocks\.(\d+)\.", n)))
    emb_dt = st.dtype("emb.weight")
    if outtype == "auto":
        outtype = {"BF16": "bf16", "F16": "f16", "F32": "f32"}[emb_dt]
    mat = {"bf16": QT.BF16, "f16": QT.F16, "f32": QT.F32}[outtype]
    if outtype == "f16" and emb_dt == "BF16":
        print("warning: bf16 -> f16 rounds values and may overflow; use --outtype bf16 for the same bits",
              file=sys.stderr)
    M = gguf.MODEL_TENSOR
    out = []

    def add(gname, srcs, fn, qt):
        out.append((gname, srcs, fn, qt))

    def plain(src, qt, squeeze=False, transpose=False, flatten=False):
        def fn():
            a = as_type(st, src, qt)
            if squeeze:
                a = a.reshape([d for d in a.shape if d != 1] or [1])
            if transpose:
                a = a.T
            if flatten:
                a = a.reshape(-1)
            return a
        return fn

    add(tname(M.TOKEN_EMBD), ["emb.weight"], plain("emb.weight", mat), mat)
    for sfx in ("weight", "bias"):
        add(tname(M.TOKEN_EMBD_NORM, suffix=sfx), [f"blocks.0.ln0.{sfx}"],
            plain(f"blocks.0.ln0.{sfx}", QT.F32), QT.F32)
        add(tname(M.OUTPUT_NORM, suffix=sfx), [f"ln_out.{sfx}"], plain(f"ln_out.{sfx}", QT.F32), QT.F32)
    add(tname(M.OUTPUT), ["head.weight"], plain("head.weight", mat), mat)

    for i in range(n_layer):
        b = f"blocks.{i}."
        for sfx in ("weight", "bias"):
            add(tname(M.ATTN_NORM, i, sfx), [b + f"ln1.{sfx}"], plain(b + f"ln1.{sfx}", QT.F32), QT.F32)
            add(tname(M.ATTN_NORM_2, i, sfx), [b + f"ln2.{sfx}"], plain(b + f"ln2.{sfx}", QT.F32), QT.F32)
            add(tname(M.TIME_MIX_LN, i, sfx), [b + f"att.ln_x.{sfx}"],
                plain(b + f"att.ln_x.{sfx}", QT.F32), QT.F32)

        srcs = [b + f"att.x_{x}" for x in LERPS]

        def lerp(srcs=srcs):
            # each [1,1,C] -> stacked [6,1,1,C] = ggml {C,1,1,6}
            return np.stack([as_f32(st, s).reshape(1, 1, -1) for s in srcs], axis=0)
        add(tname(M.TIME_MIX_LERP_FUSED, i), srcs, lerp, QT.F32)

        for x, t in (("w0", M.TIME_MIX_W0), ("a0", M.TIME_MIX_A0), ("k_k", M.TIME_MIX_K_K),
                     ("k_a", M.TIME_MIX_K_A)):
            add(tname(t, i), [b + f"att.{x}"], plain(b + f"att.{x}", QT.F32, squeeze=True), QT.F32)
        add(tname(M.TIME_MIX_R_K, i), [b + "att.r_k"], plain(b + "att.r_k", QT.F32, flatten=True), QT.F32)

        # v0/v1/v2: layer 0 gets copies of a0/a1/a2 (loaded by llama.cpp with that shape, never used)
        vsrc = "a" if i == 0 else "v"
        add(tname(M.TIME_MIX_V0, i), [b + f"att.{vsrc}0"], plain(b + f"att.{vsrc}0", QT.F32, squeeze=True),
            QT.F32)
        for lo in LORA:
            src = b + "att." + (vsrc + lo[1] if lo[0] == "v" else lo)
            qt = QT.F32 if lo[0] == "w" else mat  # decay LoRA stays f32 in llama.cpp's converter
            t = getattr(M, "TIME_MIX_" + lo.upper())
            add(tname(t, i), [src], plain(src, qt, transpose=True), qt)

        for x, t in (("receptance", M.TIME_MIX_RECEPTANCE), ("key", M.TIME_MIX_KEY),
                     ("value", M.TIME_MIX_VALUE), ("output", M.TIME_MIX_OUTPUT)):
            add(tname(t, i), [b + f"att.{x}.weight"], plain(b + f"att.{x}.weight", mat), mat)
        add(tname(M.CHANNEL_MIX_LERP_K, i), [b + "ffn.x_k"], plain(b + "ffn.x_k", QT.F32, squeeze=True), QT.F32)
        add(tname(M.CHANNEL_MIX_KEY, i), [b + "ffn.key.weight"], plain(b + "ffn.key.weight", mat), mat)
        add(tname(M.CHANNEL_MIX_VALUE, i), [b + "ffn.value.weight"], plain(b + "ffn.value.weight", mat), mat)

    used = {s for _, srcs, _, _ in out for s in srcs}
    ignored = sorted(names - used)
    unexpected = [n for n in ignored if not re.match(r"blocks\.0\.att\.v[012]$", n)]
    if unexpected:
        raise SystemExit(f"tensors this converter does not know (not RWKV-7?): {unexpected[:10]}")
    missing = sorted(s for s in used if s not in names)
    if missing:
        raise SystemExit(f"tensors missing from the checkpoint: {missing[:10]}")
    return n_layer, outtype, out


def hparams(st: SafeTensors, n_layer: int) -> dict:
    vocab, C = st.shape("emb.weight")
    H, N = st.shape("blocks.0.att.r_k")
    if H * N != C:
        raise SystemExit(f"att.r_k {H}x{N} does not match the embedding width {C}")
    v_layer = 1 if n_layer > 1 else 0
    return dict(
        vocab_size=vocab, n_embd=C, n_layer=n_layer, head_size=N,
        n_ff=st.shape("blocks.0.ffn.key.weight")[0],
        lora_decay=st.shape("blocks.0.att.w1")[1],
        lora_iclr=st.shape("blocks.0.att.a1")[1],
        lora_value=st.shape(f"blocks.{v_layer}.att.v1")[1],
        lora_gate=st.shape("blocks.0.att.g1")[1],
    )


FILE_TYPE = {"bf16": gguf.LlamaFileType.MOSTLY_BF16, "f16": gguf.LlamaFileType.MOSTLY_F16,
             "f32": gguf.LlamaFileType.ALL_F32}


def convert(src: Path, dst: Path, outtype: str, vocab_path: Path, name: str | None, quiet: bool) -> None:
    t0 = time.time()
    st = SafeTensors(src)
    n_layer, outtype, tensors = plan(st, outtype)
    hp = hparams(st, n_layer)
    tokens, toktypes = read_world_vocab(vocab_path, hp["vocab_size"])

    w = gguf.GGUFWriter(str(dst), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.RWKV7])
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name or src.stem)
    w.add_context_length(1048576)  # RWKV has no context limit
    w.add_embedding_length(hp["n_embd"])
    w.add_block_count(n_layer)
    w.add_layer_norm_eps(1e-5)
    w.add_wkv_head_size(hp["head_size"])
    w.add_decay_lora_rank(hp["lora_decay"])
    w.add_iclr_lora_rank(hp["lora_iclr"])
    w.add_value_residual_mix_lora_rank(hp["lora_value"])
    w.add_gate_lora_rank(hp["lora_gate"])
    w.add_feed_forward_length(hp["n_ff"])
    w.add_head_count(0)  # required by llama.cpp, unused
    w.add_file_type(FILE_TYPE[outtype])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    w.add_tokenizer_model("rwkv")
    w.add_token_list(tokens)
    w.add_token_types(toktypes)
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    w.add_eot_token_id(261)  # "\n\n": what llama.cpp's converter sets so chats end after one turn
    w.add_chat_template(RWKV_WORLD_TEMPLATE)

    for gname, _srcs, fn, qt in tensors:
        a = fn()
        w.add_tensor(gname, a, raw_dtype=qt)
        if not quiet:
            shape = "{" + ", ".join(str(d) for d in reversed(a.shape)) + "}"
            print(f"{gname:36s} {qt.name:5s} {shape}")

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=not quiet)
    w.close()
    size = dst.stat().st_size
    print(f"{dst}: rwkv7 L{n_layer} C{hp['n_embd']} vocab {hp['vocab_size']} ff {hp['n_ff']} "
          f"lora {hp['lora_decay']}/{hp['lora_iclr']}/{hp['lora_value']}/{hp['lora_gate']}, "
          f"{len(tensors)} tensors, {outtype}, {size / 1e9:.2f} GB in {time.time() - t0:.1f} s")


def check(src: Path, dst: Path, outtype: str) -> None:
    """Read the GGUF back and compare every tensor with the checkpoint (bit-exact when the types allow)."""
    st = SafeTensors(src)
    _, outtype, tensors = plan(st, outtype)
    r = gguf.GGUFReader(str(dst))
    by_name = {t.name: t for t in r.tensors}
    if set(by_name) != {g for g, *_ in tensors}:
        raise SystemExit(f"check: tensor sets differ: {sorted(set(by_name) ^ {g for g, *_ in tensors})[:10]}")
    exact = 0
    for gname, _srcs, fn, qt in tensors:
        t = by_name[gname]
        want = np.ascontiguousarray(fn())
        got = np.asarray(t.data)
        if t.tensor_type != qt:
            raise SystemExit(f"check: {gname} is {t.tensor_type.name}, expected {qt.name}")
        if [int(d) for d in t.shape] != list(reversed(want.shape)):
            raise SystemExit(f"check: {gname} shape {list(t.shape)} != {list(reversed(want.shape))}")
        if want.view(np.uint8).tobytes() != got.view(np.uint8).tobytes():
            raise SystemExit(f"check: {gname} bytes differ")
        exact += 1
    src = st.dtype("emb.weight")
    lossless = (outtype, src) in {("bf16", "BF16"), ("f16", "F16"), ("f32", "BF16"), ("f32", "F16"), ("f32", "F32")}
    what = "the checkpoint's values" if lossless else f"the checkpoint's values rounded to {outtype}"
    print(f"check: {exact}/{len(tensors)} tensors identical to {what} "
          f"(types and shapes as llama.cpp loads them)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="RWKV-7 .safetensors (BlinkDL names: emb., blocks.N.att., ...)")
    ap.add_argument("out", type=Path, help="the .gguf to write")
    ap.add_argument("--outtype", choices=["auto", "bf16", "f16", "f32"], default="auto",
                    help="precision of the matrices (auto: the checkpoint's own; bf16 keeps bf16 bits)")
    ap.add_argument("--vocab", type=Path, default=None,
                    help="rwkv_vocab_v20230424.txt (default: $RWKV_VOCAB, else the repo's crates/rwkv-tokenizers/vocab)")
    ap.add_argument("--name", default=None, help="general.name (default: the file stem)")
    ap.add_argument("--check", action="store_true", help="read the GGUF back and compare every tensor")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()

    vocab = args.vocab or (Path(os.environ["RWKV_VOCAB"]) if os.environ.get("RWKV_VOCAB") else None)
    if vocab is None:
        vocab = next((p for p in DEFAULT_VOCAB_CANDIDATES if p.is_file()), None)
    if vocab is None or not vocab.is_file():
        sys.exit("rwkv_vocab_v20230424.txt not found: pass --vocab")
    convert(args.model, args.out, args.outtype, vocab, args.name, args.quiet)
    if args.check:
        check(args.model, args.out, args.outtype)


if __name__ == "__main__":
    main()
