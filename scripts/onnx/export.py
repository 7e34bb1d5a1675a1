"""Exports a Tessera bundle to ONNX, so that other engines (ONNX Runtime natively and in the browser,
the engine under transformers.js) run the same weights. The graphs are written with the `onnx`
package's helpers from the bundle's own files (manifest.json + f16 safetensors); nothing is traced.

    python scripts/onnx/export.py models/fmnist-vqkd out/onnx/fmnist-vqkd

writes, for a class-conditional bundle:
- `ar_step.onnx`: one AR step with the KV cache, Tessera's `Gpt::step`: `ids` [b, 1] (a token, or
  vocab + class for the first step), `pos` [1], `past_k{i}`/`past_v{i}` [b, heads, p, head_dim] ->
  `logits` [b, vocab], `present_k{i}`/`present_v{i}` (p + 1 positions);
- `nar.onnx`: MaskGIT's forward, `MaskGit::forward`: `classes` [b], `tokens` [b, grid^2] (vocab =
  mask) -> `logits` [b, grid^2, vocab];
- `decoder.onnx`: the tokenizer's code lookup + pixel decoder, `Tokenizer::decode`: `tokens`
  [b, grid^2] -> `images` [b, channels, size, size] in [-1, 1];
- `onnx.json`: what each graph takes, the sampling defaults, and the bundle's sha256s it came from.

Weights stay f16 in the files (the same download as the bundle) behind a Cast to f32, which ONNX
Runtime folds at load: Tessera computes in f32 on the f16 values too. Text-to-image bundles are
refused (their prefix encoders are not exported).
"""
import hashlib
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

OPSET = 17  # LayerNormalization is in 17
LN_EPS = 1e-5  # burn's LayerNormConfig default, used by every block and ln_f


class ExportError(Exception):
    pass


class Graph:
    """Nodes and initializers of one graph, with fresh value names."""

    def __init__(self, weights):
        self.w, self.nodes, self.inits, self.count = weights, [], [], 0

    def fresh(self, stem):
        self.count += 1
        return f'{stem}_{self.count}'

    def weight(self, key, array=None):
        """A weight of the bundle (f16 in the file, cast to f32) under its own name."""
        a = self.w[key] if array is None else array
        self.inits.append(numpy_helper.from_array(np.asarray(a, dtype=np.float16), name=key + '.f16'))
        self.nodes.append(helper.make_node('Cast', [key + '.f16'], [key], to=TensorProto.FLOAT))
        return key

    def const(self, value, dtype):
        name = self.fresh('const')
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name=name))
        return name

    def op(self, kind, inputs, outputs=1, **attrs):
        outs = [self.fresh(kind.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(kind, inputs, outs, **attrs))
        return outs[0] if outputs == 1 else outs

    def model(self, name, inputs, outputs):
        g = helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid('', OPSET)], producer_name='tessera')
        m.ir_version = 8
        onnx.checker.check_model(m, full_check=True)
        return m

    # --- layers, named as in Tessera's modules ---
    def linear(self, x, key, bias=True):
        y = self.op('MatMul', [x, self.weight(key + '.weight')])  # burn's Linear weight is [in, out]
        return self.op('Add', [y, self.weight(key + '.bias')]) if bias else y

    def layer_norm(self, x, key):
        return self.op('LayerNormalization', [x, self.weight(key + '.gamma'), self.weight(key + '.beta')], axis=-1, epsilon=LN_EPS)

    def gelu(self, x):
        # burn's gelu is the exact erf form: x/2 (1 + erf(x / sqrt 2))
        e = self.op('Erf', [self.op('Mul', [x, self.const(1 / np.sqrt(2.0), np.float32)])])
        return self.op('Mul', [self.op('Mul', [x, self.op('Add', [e, self.const(1.0, np.float32)])]), self.const(0.5, np.float32)])

    def silu(self, x):
        return self.op('Mul', [x, self.op('Sigmoid', [x])])

    def conv3(self, x, key):
        return self.op('Conv', [x, self.weight(key + '.weight'), self.weight(key + '.bias')], kernel_shape=[3, 3], pads=[1, 1, 1, 1])


def block(g, x, key, heads, width, past=None, mask=None):
    """Tessera's pre-norm block (`proposal/block.rs`): x + attn(ln1 x), then x + mlp(ln2 x).
    `past` = (k, v) cache values [b, h, p, hd] to prepend; returns (x, (k, v))."""
    hd = width // heads
    to_heads = g.const([0, 0, heads, hd], np.int64)
    q, k, v = g.op('Split', [g.linear(g.layer_norm(x, key + '.ln1'), key + '.attn.qkv'), g.const([width] * 3, np.int64)], outputs=3, axis=2)
    q, k, v = (g.op('Transpose', [g.op('Reshape', [t, to_heads])], perm=[0, 2, 1, 3]) for t in (q, k, v))
    if past is not None:
        k = g.op('Concat', [past[0], k], axis=2)
        v = g.op('Concat', [past[1], v], axis=2)
    att = g.op('Div', [g.op('MatMul', [q, g.op('Transpose', [k], perm=[0, 1, 3, 2])]), g.const(np.sqrt(hd), np.float32)])
    if mask is not None:
        att = g.op('Add', [att, mask])
    y = g.op('MatMul', [g.op('Softmax', [att], axis=3), v])
    y = g.op('Reshape', [g.op('Transpose', [y], perm=[0, 2, 1, 3]), g.const([0, 0, width], np.int64)])
    x = g.op('Add', [x, g.linear(y, key + '.attn.proj')])
    h = g.gelu(g.linear(g.layer_norm(x, key + '.ln2'), key + '.fc'))
    return g.op('Add', [x, g.linear(h, key + '.proj')]), (k, v)


def ar_step(weights, cfg):
    """One cached step of the GPT: the table [tok_emb; cls_emb] lets one input carry the class
    (first step) or the previous token; the position selects pos_emb."""
    V, E, H, L = cfg['vocab_size'], cfg['n_embd'], cfg['n_head'], cfg['n_layer']
    g = Graph(weights)
    table = g.weight('tok_and_cls_emb', np.concatenate([weights['tok_emb.weight'], weights['cls_emb.weight']], 0))
    x = g.op('Add', [g.op('Gather', [table, 'ids']), g.op('Gather', [g.weight('pos_emb.weight'), 'pos'])])
    inputs = [helper.make_tensor_value_info('ids', TensorProto.INT64, ['b', 1]), helper.make_tensor_value_info('pos', TensorProto.INT64, [1])]
    outputs = []
    for i in range(L):
        kv = [f'past_k{i}', f'past_v{i}']
        inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, ['b', H, 'p', E // H]) for n in kv]
        x, (k, v) = block(g, x, f'blocks.{i}', H, E, past=kv)
        g.nodes.append(helper.make_node('Identity', [k], [f'present_k{i}']))
        g.nodes.append(helper.make_node('Identity', [v], [f'present_v{i}']))
        outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, ['b', H, 'p1', E // H]) for n in (f'present_k{i}', f'present_v{i}')]
    logits = g.linear(g.layer_norm(x, 'ln_f'), 'head', bias=False)
    g.nodes.append(helper.make_node('Reshape', [logits, g.const([0, V], np.int64)], ['logits']))
    return g.model('tessera_ar_step', inputs, [helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['b', V])] + outputs)


def nar(weights, cfg):
    """MaskGIT: [class] + tokens, bidirectional blocks, logits of the token positions."""
    V, E, H, L, T = cfg['vocab_size'], cfg['n_embd'], cfg['n_head'], cfg['n_layer'], cfg['block_size']
    g = Graph(weights)
    cls = g.op('Unsqueeze', [g.op('Gather', [g.weight('cls_emb.weight'), 'classes']), g.const([1], np.int64)])
    x = g.op('Concat', [cls, g.op('Gather', [g.weight('tok_emb.weight'), 'tokens'])], axis=1)
    x = g.op('Add', [x, g.weight('pos_emb.weight')])  # [T + 1, E] broadcast over the batch
    for i in range(L):
        x, _ = block(g, x, f'blocks.{i}', H, E)
    x = g.op('Slice', [x, g.const([1], np.int64), g.const([T + 1], np.int64), g.const([1], np.int64)])
    g.nodes.append(helper.make_node('Identity', [g.linear(g.layer_norm(x, 'ln_f'), 'head')], ['logits']))
    inputs = [helper.make_tensor_value_info('classes', TensorProto.INT64, ['b']), helper.make_tensor_value_info('tokens', TensorProto.INT64, ['b', T])]
    return g.model('tessera_nar', inputs, [helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['b', T, V])])


def fsq_codebook(levels):
    """FSQ's implicit codebook (`quantizer/fsq.rs`, `implicit_codebook`): digit i of index k in
    mixed radix `levels`, centred and scaled to [-1, 1]."""
    rows = []
    for idx in range(int(np.prod(levels))):
        rest, row = idx, []
        for l in levels:
            digit, rest = rest % l, rest // l
            hw = l // 2
            row.append((digit - hw) / hw)
        rows.append(row)
    return np.asarray(rows, dtype=np.float32)


def code_table(kind, tcfg, weights):
    """The vector each token decodes from: the codebook (VQGAN, VQ-KD, Cluster) or FSQ's grid."""
    if kind == 'fsq':
        return fsq_codebook(tcfg['levels'])
    for key in ('quantizer.codebook', 'codebook'):
        if key in weights:
            return weights[key]
    raise ExportError(f'{kind} tokenizer without a codebook tensor')


def decoder(weights, kind, tcfg, grid, image_size, channels):
    """Code lookup, rows -> [b, d, g, g], then the shared pixel decoder (`tokenizer/decoder.rs`)."""
    codes = code_table(kind, tcfg, weights)
    g = Graph(weights)
    z = g.op('Gather', [g.weight('code_table', codes), 'tokens'])  # [b, g*g, d]
    z = g.op('Transpose', [g.op('Reshape', [z, g.const([0, grid, grid, codes.shape[1]], np.int64)])], perm=[0, 3, 1, 2])
    up = lambda x: g.op('Resize', [x, '', g.const([1, 1, 2, 2], np.float32)], mode='nearest', coordinate_transformation_mode='asymmetric', nearest_mode='floor')
    x = g.silu(g.conv3(z, 'decoder.conv_in'))
    x = g.op('Add', [x, g.silu(g.conv3(x, 'decoder.mid'))])
    x = g.silu(g.conv3(up(x), 'decoder.up1'))
    x = g.silu(g.conv3(up(x), 'decoder.up2'))
    y = g.conv3(x, 'decoder.conv_out')
    if tcfg.get('decoder_output', 'tanh') == 'linear':
        y = g.op('Clip', [y, g.const(-1.0, np.float32), g.const(1.0, np.float32)])
    else:
        y = g.op('Tanh', [y])
    g.nodes.append(helper.make_node('Identity', [y], ['images']))
    inputs = [helper.make_tensor_value_info('tokens', TensorProto.INT64, ['b', grid * grid])]
    return g.model('tessera_decoder', inputs, [helper.make_tensor_value_info('images', TensorProto.FLOAT, ['b', channels, image_size, image_size])])


def verified(bundle, manifest, role):
    """A bundle file, read only after its size and sha256 match the manifest."""
    f = manifest['files'].get(role)
    if f is None:
        raise ExportError(f'the manifest has no file {role!r}')
    path = os.path.join(bundle, f['path'])
    data = open(path, 'rb').read()
    if len(data) != f['bytes'] or hashlib.sha256(data).hexdigest() != f['sha256']:
        raise ExportError(f'{path}: size or sha256 differs from the manifest')
    return {k: v.astype(np.float32) for k, v in load_file(path).items()}


def export(bundle, out):
    manifest = json.load(open(os.path.join(bundle, 'manifest.json')))
    if manifest.get('format') != 'tessera-bundle':
        raise ExportError(f'{bundle}: not a Tessera bundle')
    if manifest.get('text'):
        raise ExportError(f'{bundle}: text-to-image bundles are not exported (their text encoders are not in the graphs)')
    os.makedirs(out, exist_ok=True)
    tok = manifest['tokenizer']
    grid = manifest['grid'][0]
    ds = manifest['dataset']
    graphs = {'decoder': decoder(verified(bundle, manifest, 'tokenizer'), tok['kind'], tok['config'], grid, ds['image_size'], ds['channels'])}
    props = manifest['proposals']
    if 'ar' in props:
        graphs['ar_step'] = ar_step(verified(bundle, manifest, 'ar'), props['ar']['model']['config'])
    if 'nar' in props:
        graphs['nar'] = nar(verified(bundle, manifest, 'nar'), props['nar']['model']['config'])
    meta = {
        'bundle': manifest['name'], 'grid': grid, 'image_size': ds['image_size'], 'channels': ds['channels'],
        'classes': ds['classes'], 'blank_token': manifest.get('blank_token', 0),
        'proposals': {k: {'config': v['model']['config'], 'sampling': v['sampling']} for k, v in props.items()},
        'files': {}, 'from': {r: f['sha256'] for r, f in manifest['files'].items()},
    }
    for name, m in graphs.items():
        path = os.path.join(out, name + '.onnx')
        tmp = path + '.tmp'
        onnx.save(m, tmp)
        os.replace(tmp, path)
        meta['files'][name] = {'path': name + '.onnx', 'bytes': os.path.getsize(path)}
    with open(os.path.join(out, 'onnx.json.tmp'), 'w') as f:
        json.dump(meta, f, indent=1)
    os.replace(os.path.join(out, 'onnx.json.tmp'), os.path.join(out, 'onnx.json'))
    return meta


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit('usage: export.py BUNDLE_DIR OUT_DIR')
    try:
        meta = export(sys.argv[1], sys.argv[2])
    except (ExportError, OSError, KeyError, json.JSONDecodeError) as e:
        sys.exit(f'export-onnx: {e}')
    print(json.dumps({k: v['bytes'] for k, v in meta['files'].items()}))
