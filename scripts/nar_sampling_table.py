"""Writes docs/results/nar-sampling/README.md from the eval JSONs that scripts/nar_sampling.sh made."""
import glob
import json
import os
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "docs/results/nar-sampling"
rows = []
for f in sorted(glob.glob(os.path.join(out, "*.json"))):
    e = json.load(open(f))
    p = e["proposals"]["nar"]
    s = p["sampling"]
    rows.append((e["tokenizer"], s["steps"], s["confidence_noise"], s["top_k"], s["top_p"], p["fid_eval"], p["is_eval"],
                 p["class_consistency_mean"], os.path.basename(f)))
rows.sort(key=lambda r: (r[0], r[1], -r[2], r[3]))
lines = [
    "# NAR sampling settings vs the NAR FID_eval of a row (seed-0 table bundles)",
    "",
    "Written by `scripts/nar_sampling.sh` (which also lists the exact `tessera-train eval` flags of every variant): the "
    "seed-0 bundles of the table (`runs/table/<row>/s0/bundle`) re-evaluated with other MaskGIT settings; everything "
    "else as in the table (1,000 class-balanced samples, guidance 1.75, the in-project evaluator — not Inception). "
    "`*-default.json` are the table's own evaluations.",
    "",
    "| tokenizer | steps | confidence noise | top-k | top-p | FID_eval NAR | IS_eval NAR | class cons. NAR % | file |",
    "|---|---|---|---|---|---|---|---|---|",
]
for r in rows:
    lines.append(f"| {r[0]} | {r[1]} | {r[2]:g} | {r[3] or 'off'} | {r[4]:.2f} | {r[5]:.1f} | {r[6]:.2f} | {100 * r[7]:.1f} | {r[8]} |")
open(os.path.join(out, "README.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
