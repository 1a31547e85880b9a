#!/usr/bin/env python3
"""Issue 4's GPU targets, read off what a GPU session measured.

  python3 tools/gpu_targets.py --bench results/kernel-bench-<gpu>.json \
      [--validation results/validation-<gpu>.json] [--validation results/validation-<gpu>-all-layers.json] \
      [--out results/targets-<gpu>.md]

Targets (issue 4): GEMM >= 0.8 of the measured large-GEMM peak at large
shapes (BM_Gemm rows with m >= 1024: `peak_frac`); decode attention >= 0.7
of the measured copy bandwidth at batch x context >= 256k tokens (every
BM_DecodeAttention row: `bw_frac`, per kernel variant and model shape);
prefill attention >= 0.4 of the peak at 4k prompts (BM_PrefillAttention
rows without a prefix: `peak_frac`, per kernel variant and model shape;
chunks after a cached prefix are listed apart, not a target); simulated vs real p50 TTFT and TPOT within 10%
(validation.json `rel_err`). A benchmark row that errored (a kernel that
does not apply, or failed) is listed as skipped with its message. Prints a
Markdown table (also written to --out) and exits 0 whatever the verdicts:
it reports, the session script decides nothing from it.
"""
import argparse
import json
import re
import statistics
import sys

GEMM_TARGET, DECODE_TARGET, PREFILL_TARGET, VALIDATE_TARGET = 0.8, 0.7, 0.4, 0.10
PREFILL_KERNELS = {0: "mma", 1: "simt", 2: "wgmma"}
DECODE_KERNELS = {0: "regs", 1: "smem", 2: "regs-scatter", 3: "mma"}
MODELS = {0: "llama-3.1-8b", 1: "llama-3.1-70b"}


def args_of(name):
    """'BM_Gemm/model:0/proj:2/m:1024/manual_time' -> ('BM_Gemm', {'model': 0, 'proj': 2, 'm': 1024})."""
    parts = name.split("/")
    return parts[0], {k: int(v) for k, v in (p.split(":") for p in parts[1:] if re.fullmatch(r"\w+:-?\d+", p))}


def variant(kernels, a):
    """'regs, llama-3.1-70b': a kernel variant at one model's shape (a target can hold at one and not the other)."""
    return (f"{kernels.get(a.get('kernel', 0), str(a.get('kernel')))}, "
            f"{MODELS.get(a.get('model', 0), 'model ' + str(a.get('model')))}")


def verdict(value, target):
    return "met" if value >= target else "missed"


def load_bench(path):
    """The benchmark JSON, and a note when it was cut short. Google Benchmark
    writes each row as it finishes and closes the array at the end, so a run
    stopped by the session's time limit leaves whole rows with no closing
    brackets: those rows are read, and the output says the run was cut."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        sys.exit(f"gpu_targets: {path}: {e}")
    try:
        return json.loads(text), None
    except ValueError as e:
        error = e
    cut = text.rstrip()
    if cut.endswith("}"):
        try:
            doc = json.loads(cut + "\n  ]\n}\n")
            return doc, (f"`{path}` was cut short (no closing brackets: the benchmark run was stopped); "
                         f"the {len(doc.get('benchmarks', []))} rows it finished are read, the rest were not measured")
        except ValueError:
            pass
    sys.exit(f"gpu_targets: {path}: {error}")


def bench_rows(path):
    doc, cut_note = load_bench(path)
    rows = []
    for b in doc.get("benchmarks", []):
        if b.get("run_type") == "aggregate":
            continue
        family, a = args_of(b["name"])
        rows.append((family, a, b))
    note = cut_note or doc.get("pdsim_note")
    return doc.get("context", {}), rows, note


def fraction_lines(rows, family, counter, target, group_of, what, select=lambda a: True):
    """One line per group (kernel variant or all): median and min of `counter` over the selected rows."""
    out, groups, skipped = [], {}, []
    for fam, a, b in rows:
        if fam != family or not select(a):
            continue
        if b.get("error_occurred"):
            skipped.append((group_of(a), b.get("error_message", "error")))
        elif counter in b:
            groups.setdefault(group_of(a), []).append((b[counter], b["name"]))
    for g, vals in sorted(groups.items()):
        xs = [v for v, _ in vals]
        med, lo = statistics.median(xs), min(xs)
        worst = min(vals)[1]
        out.append(f"| {what} ({g}) | >= {target} | median {med:.3f}, min {lo:.3f} over {len(xs)} rows "
                   f"(min at {worst}) | **{verdict(med, target)}** |")
    for g, msg in sorted(set(skipped)):
        if g not in groups:
            out.append(f"| {what} ({g}) | >= {target} | skipped: {msg} | - |")
    if not groups and not skipped:
        out.append(f"| {what} | >= {target} | no {family} rows | - |")
    return out


def validation_lines(path):
    try:
        with open(path) as f:
            v = json.load(f)
    except (OSError, ValueError) as e:
        return [f"| validate ({path}) | within 10% | unreadable: {e} | - |"]
    out = []
    for model, errs in v.get("rel_err", {}).items():
        for k in ("ttft_p50", "tpot_p50"):
            e = errs[k]
            ok = abs(e) <= VALIDATE_TARGET
            out.append(f"| {model} vs real {k} ({path.rsplit('/', 1)[-1]}) | within 10% | {100 * e:+.1f}% | "
                       f"**{'met' if ok else 'missed'}** |")
    return out or [f"| validate ({path}) | within 10% | no rel_err | - |"]


def tbt_tail_lines(path):
    """Not a target: TBT p99 against real, and whether kernel outliers explain it
    (pdsim validate's batch_agreement: decode batches the kernels ran over
    1.5x every model's price, and their share of the decode tokens)."""
    try:
        with open(path) as f:
            v = json.load(f)
    except (OSError, ValueError):
        return []  # validation_lines already said so
    name = path.rsplit('/', 1)[-1]
    real = v.get("real", {}).get("tbt_s", {}).get("p99")
    errs = ", ".join(f"{m} {100 * e['tbt_p99']:+.1f}%" for m, e in v.get("rel_err", {}).items() if "tbt_p99" in e)
    line = f"- TBT p99 ({name}): " + (f"real {1e3 * real:.2f} ms; " if real is not None else "") + (errs or "no rel_err")
    for pool, a in v.get("batch_agreement", {}).items():
        ol = a.get("outliers", {})
        total = ol.get("decode_tokens_total", 0)
        if not total:
            continue
        line += (f"; {pool}: {ol.get('batches', 0)} of {a.get('batches', 0)} batches over "
                 f"{ol.get('factor', 1.5)}x every model, {100 * ol.get('decode_tokens', 0) / total:.2f}% of decode tokens")
        worst = a.get("worst", [])
        if worst:
            w = worst[0]
            models = [k for k in w if k.endswith("_s") and k not in ("real_s", "start_s")]
            line += (f" (worst: {w.get('decode_seqs', 0)} seqs, {w.get('decode_kv_tokens', 0):.0f} KV tokens, "
                     f"real {1e3 * w['real_s']:.2f} ms vs " +
                     ", ".join(f"{m[:-2]} {1e3 * w[m]:.2f}" for m in models) + ")")
    return [line]


def chunk_lines(rows):
    """Not a target: prefill attention of chunks after a cached prefix (chunked prefill), per row."""
    out = []
    for fam, a, b in rows:
        if fam != "BM_PrefillAttention" or a.get("prefix", 0) == 0 or b.get("error_occurred"):
            continue
        out.append(f"| {variant(PREFILL_KERNELS, a)} | {a.get('seqs', '?')} chunks of {4096 - a['prefix']} "
                   f"after {a['prefix']} cached | {time_of(b)} | {b.get('peak_frac', float('nan')):.3f} |")
    if out:
        out = ["", "Not a target: prefill attention after a cached prefix (BM_PrefillAttention prefix > 0; "
               "peak_frac over the unmasked pairs):", "", "| kernel, model | shape | time | peak_frac |",
               "|---|---|---|---|"] + out
    return out


ELEMENTWISE_OPS = {0: "rmsnorm", 1: "add_rmsnorm", 2: "silu_gate", 3: "kv_append"}


def time_of(b):
    """A benchmark row's time with its unit ('3.2 us')."""
    unit = b.get("time_unit", "")
    return f"{b['real_time']:.1f}" + (f" {unit}" if unit else "")


def elementwise_lines(rows):
    """Not a target: each elementwise op's time at the fewest and most tokens
    benchmarked and its bw_frac at the most (BM_Elementwise)."""
    by = {}
    for fam, a, b in rows:
        if fam == "BM_Elementwise" and not b.get("error_occurred") and "real_time" in b:
            by.setdefault((a.get("op", 0), a.get("model", 0)), []).append((a.get("tokens", 0), b))
    out = []
    for (op, model), pts in sorted(by.items()):
        pts.sort(key=lambda x: x[0])
        (t0, b0), (t1, b1) = pts[0], pts[-1]
        out.append(f"| {ELEMENTWISE_OPS.get(op, op)} | {MODELS.get(model, model)} | {t0}: {time_of(b0)} | "
                   f"{t1}: {time_of(b1)} | {b1.get('bw_frac', float('nan')):.3f} |")
    if out:
        out = ["", "Not a target: elementwise kernels (BM_Elementwise; bw_frac of the copy bandwidth):", "",
               "| op | model | tokens: time (fewest) | tokens: time (most) | bw_frac (most) |",
               "|---|---|---|---|---|"] + out
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", required=True, help="Google Benchmark JSON of pdsim_kernel_bench")
    p.add_argument("--validation", action="append", default=[], help="validation.json of pdsim validate")
    p.add_argument("--out", help="also write the table here")
    o = p.parse_args()
    context, rows, note = bench_rows(o.bench)
    lines = [f"# Issue 4 GPU targets ({context.get('host_name', '?')}, {context.get('date', '?')})", "",
             f"From `{o.bench}`" + "".join(f", `{v}`" for v in o.validation) + ".", ""]
    if note:
        lines += [f"Benchmark run incomplete: {note}.", ""]
    lines += ["| target | wanted | measured | verdict |", "|---|---|---|---|"]
    lines += fraction_lines(rows, "BM_Gemm", "peak_frac", GEMM_TARGET, lambda a: "m >= 1024", "GEMM peak_frac",
                            select=lambda a: a.get("m", 0) >= 1024)
    lines += fraction_lines(rows, "BM_DecodeAttention", "bw_frac", DECODE_TARGET,
                            lambda a: variant(DECODE_KERNELS, a), "decode attention bw_frac, 256k tokens")
    lines += fraction_lines(rows, "BM_PrefillAttention", "peak_frac", PREFILL_TARGET,
                            lambda a: variant(PREFILL_KERNELS, a), "prefill attention peak_frac, 4k prompts",
                            select=lambda a: a.get("prefix", 0) == 0)
    for v in o.validation:
        lines += validation_lines(v)
    lines += chunk_lines(rows)
    lines += elementwise_lines(rows)
    tails = [line for v in o.validation for line in tbt_tail_lines(v)]
    if tails:
        lines += ["", "Not a target, for finding what makes the TBT tail (pdsim validate's per-batch agreement):", ""] + tails
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if o.out:
        with open(o.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
