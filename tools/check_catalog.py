#!/usr/bin/env python3
"""Check profiles/models.json: derive each model's parameter count from its
structural fields with the same formula the C++ model code uses, and compare it
with the published figure. Exits non-zero if any model is off by more than 1%.

Usage: python3 tools/check_catalog.py [path/to/models.json]
"""
import json
import os
import sys

TOLERANCE = 0.01


def derived_params(m):
    h = m["hidden"]
    q = m["heads"] * m["head_dim"]
    kv = m["kv_heads"] * m["head_dim"]
    ffn = m["ffn_hidden"]
    gated = m["mlp"] == "gated_silu"

    attn = h * q + 2 * h * kv + q * h
    mlp = (3 if gated else 2) * h * ffn

    bias = m["bias"]
    if bias == "none":
        biases = 0
    elif bias == "qkv":
        biases = q + 2 * kv
    elif bias == "all":
        biases = q + 2 * kv + h + ffn + h + (ffn if gated else 0)
    else:
        raise ValueError("unknown bias kind %r" % bias)

    if m["norm"] == "rmsnorm":
        norms, final_norm = 2 * h, h
    elif m["norm"] == "layernorm":
        norms, final_norm = 4 * h, 2 * h
    else:
        raise ValueError("unknown norm kind %r" % m["norm"])

    layer = attn + mlp + biases + norms
    embed = m["vocab"] * h
    lm_head = 0 if m["tied_embeddings"] else m["vocab"] * h
    pos = m["learned_pos_embeddings"] * h
    return m["layers"] * layer + embed + lm_head + final_norm + pos


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "profiles", "models.json")
    with open(path) as f:
        catalog = json.load(f)

    worst = 0.0
    bad = []
    print("%-16s %18s %16s %9s" % ("model", "derived", "published", "rel_err"))
    for name, m in catalog["models"].items():
        if m["heads"] % m["kv_heads"] != 0:
            bad.append(name)
            print("%s: heads %d not a multiple of kv_heads %d" % (name, m["heads"], m["kv_heads"]))
        d = derived_params(m)
        p = m["published_params"]
        rel = (d - p) / p
        worst = max(worst, abs(rel))
        flag = "" if abs(rel) <= TOLERANCE else "  <-- OUT OF TOLERANCE"
        print("%-16s %18s %16.4g %+8.3f%%%s" % (name, format(d, ","), p, 100 * rel, flag))
        if abs(rel) > TOLERANCE:
            bad.append(name)
    print("worst |rel_err| = %.3f%% (tolerance %.1f%%)" % (100 * worst, 100 * TOLERANCE))
    if bad:
        print("FAIL: " + ", ".join(bad))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
