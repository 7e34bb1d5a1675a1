#!/usr/bin/env python3
"""Carries a long table (`tessera-train table`) from one machine to the next.

A table of this size takes more hours than one sitting, and each sitting may be a fresh machine whose
`runs/` (not committed) is empty. The table already keeps every finished (row, seed)'s eval.json in
`<out>/runs/`; this script keeps, in `<out>/carry/` (committed), the checkpoints that continuing needs
and nothing more:
  - the shared stages (perceptual-loss classifier, in-domain ViT teachers) while the table is not
    complete (the pretrained EfficientNet-Lite0 is re-imported in seconds, not carried);
  - every (row, seed) not evaluated yet: its stages' checkpoints, weights and optimizer state, so
    `train --resume` continues exactly where the last sitting stopped;
  - with `--t2i OUT`: the tokenizer of every evaluated (row, seed) while that text-to-image table
    (which reuses them, `--tokenizers-from`) is not complete.
Exported bundles, PNGs and temporary files are left out (export and eval remake them).

  scripts/carry.py save    WORK OUT [--t2i T2I_OUT]   # before committing at the end of a sitting
  scripts/carry.py restore WORK OUT                   # before the table runs again (reproduce.sh does it)

`save` rewrites `<out>/carry` from scratch (what is no longer needed goes); `restore` copies a carried
checkpoint folder only where the work folder has none (state.json), so newer local work is never
overwritten. Checkpoints at these sizes are 1-7 MB each."""
import argparse
import json
import os
import shutil

SHARED = ('classifier', 'teacher-vit', 'teacher-vit-mim')


def complete(out):
    """Whether the table in `out` says it is complete (table.json)."""
    try:
        return json.load(open(os.path.join(out, 'table.json'))).get('complete') is True
    except (OSError, ValueError):
        return False


def runs(work):
    """(row, seed folder) of every run in a table's work folder."""
    for row in sorted(os.listdir(work)) if os.path.isdir(work) else []:
        d = os.path.join(work, row)
        if os.path.isdir(d) and row not in SHARED and not row.startswith('teacher-'):
            for s in sorted(os.listdir(d)):
                if s[:1] == 's' and s[1:].isdigit() and os.path.isdir(os.path.join(d, s)):
                    yield row, s


def copy(src, dst):
    """Copies a checkpoint file or folder, leaving out bundles, PNGs and temporary files."""
    if os.path.isdir(src):
        for name in sorted(os.listdir(src)):
            if name == 'bundle' or name.endswith(('.tmp', '.png')) or name in ('eval.json', 'timing.json'):
                continue
            copy(os.path.join(src, name), os.path.join(dst, name))
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)


def needed(work, out, t2i_out):
    """Paths (relative to `work`) a continuation needs."""
    if complete(out):
        return []
    paths = [d for d in SHARED if os.path.exists(os.path.join(work, d, 'state.json'))]
    keep_tokenizers = t2i_out is not None and not complete(t2i_out)
    for row, s in runs(work):
        run = os.path.join(row, s)
        if not os.path.exists(os.path.join(work, run, 'eval.json')):
            paths.append(run)
        elif keep_tokenizers and os.path.exists(os.path.join(work, run, 'tokenizer', 'state.json')):
            paths += [os.path.join(run, 'tokenizer'), os.path.join(run, 'data.json')]
    return [p for p in paths if os.path.exists(os.path.join(work, p))]


def save(work, out, t2i_out):
    carry = os.path.join(out, 'carry')
    shutil.rmtree(carry, ignore_errors=True)
    paths = needed(work, out, t2i_out)
    for p in paths:
        copy(os.path.join(work, p), os.path.join(carry, p))
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(carry) for f in fs) if paths else 0
    print(f'carry: {len(paths)} checkpoint folders of {work} -> {carry} ({size / 1e6:.1f} MB)')


def restore(work, out):
    carry = os.path.join(out, 'carry')
    if not os.path.isdir(carry):
        return
    restored = []
    for dp, dirs, files in os.walk(carry):
        rel = os.path.relpath(dp, carry)
        if 'state.json' in files:
            dirs.clear()  # a checkpoint folder: all or nothing
            if not os.path.exists(os.path.join(work, rel, 'state.json')):
                copy(dp, os.path.join(work, rel))
                restored.append(rel)
        else:
            for f in files:
                if not os.path.exists(os.path.join(work, rel, f)):
                    copy(os.path.join(dp, f), os.path.join(work, rel, f))
    print(f'carry: restored {len(restored)} checkpoint folders into {work}' + (f" ({', '.join(restored)})" if restored else ''))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('action', choices=['save', 'restore'])
    ap.add_argument('work')
    ap.add_argument('out')
    ap.add_argument('--t2i', help='results folder of the text-to-image table that reuses these tokenizers')
    a = ap.parse_args()
    save(a.work, a.out, a.t2i) if a.action == 'save' else restore(a.work, a.out)


if __name__ == '__main__':
    main()
