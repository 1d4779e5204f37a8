"""Write small seed inputs for the fuzz targets: tiny RWKV-4, 5.2, 6 and 7 models (random
weights, every tensor a model needs) as safetensors, rwkv.cpp .bin (f32, f16 and quantized
tensors, with the converter's rewrites) and PyTorch zip checkpoints. Standard library only.

usage: python3 make_seeds.py   (writes seeds/{pth,safetensors,rwkvcpp}/)
"""
import collections, io, json, math, os, pickle, random, struct, sys, types, zipfile

random.seed(7)
V, C, F = 8, 32, 32


def vec(n, lo=-0.5, hi=0.5):
    return [random.uniform(lo, hi) for _ in range(n)]


def tensor(shape, lo=-0.5, hi=0.5):
    return (list(shape), vec(math.prod(shape), lo, hi))


def common(m, layers):
    m["emb.weight"] = tensor([V, C])
    m["blocks.0.ln0.weight"] = tensor([C], 0.5, 1.5)
    m["blocks.0.ln0.bias"] = tensor([C])
    for i in range(layers):
        for n in ["ln1", "ln2"]:
            m[f"blocks.{i}.{n}.weight"] = tensor([C], 0.5, 1.5)
            m[f"blocks.{i}.{n}.bias"] = tensor([C])
    m["ln_out.weight"] = tensor([C], 0.5, 1.5)
    m["ln_out.bias"] = tensor([C])
    m["head.weight"] = tensor([V, C])


def ffn(m, i, mix):
    for k in ["k", "r"]:
        m[f"blocks.{i}.ffn.{mix}_{k}"] = tensor([1, 1, C], 0, 1)
    m[f"blocks.{i}.ffn.key.weight"] = tensor([F, C])
    m[f"blocks.{i}.ffn.value.weight"] = tensor([C, F])
    m[f"blocks.{i}.ffn.receptance.weight"] = tensor([C, C])


def att_proj(m, a, gate):
    for p in ["key", "value", "receptance", "output"] + (["gate"] if gate else []):
        m[f"{a}{p}.weight"] = tensor([C, C])


def v4():
    m = {}
    common(m, 1)
    a = "blocks.0.att."
    for k in "kvr":
        m[a + "time_mix_" + k] = tensor([1, 1, C], 0, 1)
    m[a + "time_decay"] = tensor([C], -2, 1)
    m[a + "time_first"] = tensor([C])
    att_proj(m, a, False)
    ffn(m, 0, "time_mix")
    return m


def v52():
    m = {}
    common(m, 1)
    a = "blocks.0.att."
    for k in "kvrg":
        m[a + "time_mix_" + k] = tensor([1, 1, C], 0, 1)
    m[a + "time_decay"] = tensor([2, 16], -2, 1)
    m[a + "time_faaaa"] = tensor([2, 16])
    m[a + "ln_x.weight"] = tensor([C], 0.5, 1.5)
    m[a + "ln_x.bias"] = tensor([C])
    att_proj(m, a, True)
    ffn(m, 0, "time_mix")
    return m


def v6():
    m = {}
    common(m, 1)
    a = "blocks.0.att."
    for k in "xwkvrg":
        m[a + "time_maa_" + k] = tensor([1, 1, C], 0, 1)
    m[a + "time_maa_w1"] = tensor([C, 5 * 4])
    m[a + "time_maa_w2"] = tensor([5, 4, C])
    m[a + "time_decay"] = tensor([1, 1, C], -2, 1)
    m[a + "time_decay_w1"] = tensor([C, 4])
    m[a + "time_decay_w2"] = tensor([4, C])
    m[a + "time_faaaa"] = tensor([2, 16])
    m[a + "ln_x.weight"] = tensor([C], 0.5, 1.5)
    m[a + "ln_x.bias"] = tensor([C])
    att_proj(m, a, True)
    ffn(m, 0, "time_maa")
    return m


def v7():
    m = {}
    common(m, 2)
    for i in range(2):
        a = f"blocks.{i}.att."
        for k in "rwkvag":
            m[a + "x_" + k] = tensor([1, 1, C], 0, 1)
        for k in ["w0", "a0", "k_k", "k_a"]:
            m[a + k] = tensor([1, 1, C])
        if i > 0:
            m[a + "v0"] = tensor([1, 1, C])
        m[a + "r_k"] = tensor([2, 16])
        for k in "wavg" if i > 0 else "wag":
            m[a + k + "1"] = tensor([C, 4])
            m[a + k + "2"] = tensor([4, C])
        m[a + "ln_x.weight"] = tensor([C], 0.5, 1.5)
        m[a + "ln_x.bias"] = tensor([C])
        att_proj(m, a, False)
        m[f"blocks.{i}.ffn.x_k"] = tensor([1, 1, C], 0, 1)
        m[f"blocks.{i}.ffn.key.weight"] = tensor([F, C])
        m[f"blocks.{i}.ffn.value.weight"] = tensor([C, F])
    return m


def f32(values):
    return struct.pack(f"<{len(values)}f", *values)


def safetensors(m):
    header, data = {}, b""
    for k, (shape, v) in sorted(m.items()):
        b = f32(v)
        header[k] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


# --- rwkv.cpp -----------------------------------------------------------------------------

def f16(x):
    return struct.pack("<e", x)


def quantize(t, values):
    """ggml block formats (Q4_0 2, Q5_1 8, Q8_0 9), one block per 32 values."""
    out = b""
    for i in range(0, len(values), 32):
        x = values[i:i + 32]
        amax = max(x, key=abs)
        lo, hi = min(x), max(x)
        if t == 2:
            d = amax / -8 or 1.0
            q = [min(15, int(v / d + 8.5)) for v in x]
            out += f16(d) + bytes((q[j] & 15) | ((q[j + 16] & 15) << 4) for j in range(16))
        elif t == 8:
            d = (hi - lo) / 31 or 1.0
            q = [min(31, int((v - lo) / d + 0.5)) for v in x]
            qh = sum(((q[j] >> 4) & 1) << j for j in range(32))
            out += f16(d) + f16(lo) + struct.pack("<I", qh) + bytes((q[j] & 15) | ((q[j + 16] & 15) << 4) for j in range(16))
        elif t == 9:
            d = abs(amax) / 127 or 1.0
            out += f16(d) + bytes(int(round(v / d)) & 255 for v in x)
    return out


def rwkvcpp(m, data_type, gen):
    """Apply rwkv.cpp's converter rewrites and write the file; 2-D matrices stored as `data_type`."""
    t = {}
    for k, (shape, v) in m.items():
        leaf = k.split(".att.")[-1] if ".att." in k else None
        if gen == 4 and leaf == "time_decay":
            v = [-math.exp(x) for x in v]
        elif gen == 5 and leaf == "time_decay":
            v = [math.exp(-math.exp(x)) for x in v]
            shape = [shape[0], shape[1], 1]
        elif gen == 5 and leaf == "time_faaaa":
            shape = [shape[0], shape[1], 1]
        elif gen == 6 and leaf in ("time_maa_w1", "time_decay_w1", "time_decay_w2"):
            r, c = shape
            v = [v[i * c + j] for j in range(c) for i in range(r)]
            shape = [c, r]
        elif gen == 6 and leaf == "time_maa_w2":
            a, b, c = shape
            v = [v[(i * b + j) * c + kk] for i in range(a) for kk in range(c) for j in range(b)]
            shape = [a, c, b]
        elif gen == 7 and leaf in ("w1", "w2", "a1", "a2", "v1", "v2", "g1", "g2"):
            r, c = shape
            v = [v[i * c + j] for j in range(c) for i in range(r)]
            shape = [c, r]
        t[k] = (shape, v)
    if gen == 7:
        for i in range(2):
            a = f"blocks.{i}.att."
            parts = [t.pop(a + "x_" + k)[1] for k in "rwkvag"]
            t[a + "x_rwkvag"] = ([6, 1, C], sum(parts, []))
    out = struct.pack("<6i", 0x67676D66, 101, V, C, 2 if gen == 7 else 1, data_type)
    for k, (shape, v) in t.items():
        dims = list(reversed(shape))
        quant = data_type != 0 and len(shape) == 2 and k.endswith(".weight") and "emb" not in k and dims[0] % 32 == 0
        if quant and data_type == 1:
            tt, data = 1, b"".join(f16(x) for x in v)
        elif quant:
            tt, data = data_type, quantize(data_type, v)
        else:
            tt, data = 0, f32(v)
        key = k.encode()
        out += struct.pack(f"<3i{len(dims)}i", len(dims), len(key), tt, *dims) + key + data
    return out


# --- PyTorch zip --------------------------------------------------------------------------

def fake_torch():
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    FloatStorage.__module__ = "torch"
    FloatStorage.__qualname__ = "FloatStorage"

    def _rebuild_tensor_v2(*args):
        pass

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2, torch._utils = FloatStorage, _rebuild_tensor_v2, utils
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    return FloatStorage, _rebuild_tensor_v2


FloatStorage, rebuild = fake_torch()


class Storage:
    def __init__(self, key, n):
        self.key, self.n = key, n


class Tensor:
    def __init__(self, key, shape):
        self.key, self.shape = key, shape

    def __reduce__(self):
        stride, s = [], 1
        for d in reversed(self.shape):
            stride.insert(0, s)
            s *= d
        return (rebuild, (Storage(self.key, math.prod(self.shape)), 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", obj.n)
        return None


def pth(m):
    sd = collections.OrderedDict()
    storages = {}
    for i, (k, (shape, v)) in enumerate(m.items()):
        sd[k] = Tensor(str(i), shape)
        storages[str(i)] = f32(v)
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(sd)
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as f:
        f.writestr("archive/data.pkl", buf.getvalue())
        f.writestr("archive/byteorder", "little")
        for key, b in storages.items():
            f.writestr(f"archive/data/{key}", b)
        f.writestr("archive/version", "3\n")
    return z.getvalue()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    models = {"v4": (v4(), 4), "v5.2": (v52(), 5), "v6": (v6(), 6), "v7": (v7(), 7)}
    types_for = {"v4": [0, 2], "v5.2": [1, 8], "v6": [9, 0], "v7": [8, 1]}
    for kind in ["pth", "safetensors", "rwkvcpp"]:
        os.makedirs(f"{here}/seeds/{kind}", exist_ok=True)
    for name, (m, gen) in models.items():
        open(f"{here}/seeds/safetensors/{name}.safetensors", "wb").write(safetensors(m))
        open(f"{here}/seeds/pth/{name}.pth", "wb").write(pth(m))
        for dt in types_for[name]:
            open(f"{here}/seeds/rwkvcpp/{name}-type{dt}.bin", "wb").write(rwkvcpp(m, dt, gen))


main()
