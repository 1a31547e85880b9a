#!/usr/bin/env python3
"""Mutated scenarios must give exit 0 with complete outputs, or exit 2 with one
stderr line naming the file and no summary.json: never a crash, an internal
error (exit 1), a hang or several lines. Mutations of the shipped simulation
scenarios (the real-kernel ones excepted: they run kernels), seeded, so a
failure reproduces: a key removed or misspelt, a value replaced by another
type, a boundary number (0, -1, 0.5, 1e308, 2^64 + 5, ...) or a scaled one,
two values at once, or the JSON text truncated or with one character changed;
in a fifth of the runs the same kinds of change go to the data the scenario
reads instead (the H100 GPU profile or the model's catalog entry, through
--data-dir).
Usage: fuzz_scenarios.py PDSIM SRC [RUNS] [SEED]"""
import json, os, random, shutil, subprocess, sys, tempfile

pdsim, src = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 120
rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
names = sorted(f for f in os.listdir(f"{src}/scenarios") if f.endswith(".json") and "real" not in f)
VALUES = [0, -1, 1, 2, 0.5, -0.0, 1e308, -1e308, 1e-300, 2**63, 2**64 + 5, -2**63, 4294967297, 1e9,
          "x", "", None, [], {}, True, False, [1, 2], {"a": 1}]


def paths(v, p=()):
    if p:
        yield p
    if isinstance(v, dict):
        for k, x in v.items():
            yield from paths(x, p + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from paths(x, p + (i,))


def parent_of(doc, p):
    for k in p[:-1]:
        doc = doc[k]
    return doc


def mutate(doc, within=()):
    """Mutates doc in place (or returns replacement text); returns (description, text or None).
    within: only paths under this prefix."""
    kind = rng.random()
    ps = [p for p in paths(doc) if p[:len(within)] == within and len(p) > len(within)]
    p = rng.choice(ps)
    parent, key = parent_of(doc, p), p[-1]
    if kind < 0.15:
        del parent[key]
        return f"remove {p}", None
    if kind < 0.25 and isinstance(parent, dict):
        parent[key + rng.choice(["s", "_", "X"])] = parent.pop(key)
        return f"misspell {p}", None
    if kind < 0.70:
        parent[key] = rng.choice(VALUES)
        return f"set {p} = {parent[key]!r}", None
    if kind < 0.80:
        old = parent[key]
        if isinstance(old, (int, float)) and not isinstance(old, bool):
            parent[key] = old * rng.choice([0, -1, 1e-6, 0.999, 1.001, 1000, 1e6])
            if isinstance(old, int) and rng.random() < 0.5:
                parent[key] = int(parent[key])
        else:
            parent[key] = rng.choice(VALUES)
        return f"scale {p} = {parent[key]!r}", None
    if kind < 0.88:
        q = rng.choice(ps)
        parent[key] = rng.choice(VALUES)
        try:
            parent_of(doc, q)[q[-1]] = rng.choice(VALUES)
        except (KeyError, IndexError, TypeError):
            pass  # the first change removed q's parent
        return f"set {p} and {q}", None
    text = json.dumps(doc, indent=1)
    at = rng.randrange(len(text))
    if kind < 0.94:
        return f"truncate the text at {at}", text[:at]
    return f"change character {at} of the text", text[:at] + rng.choice("{}[]\",:x0-") + text[at + 1:]


def data_dir_with(tmp, run, model):
    """A copy of the profiles the scenario reads with one file mutated; returns (dir, description)."""
    data = f"{tmp}/data{run}"
    os.makedirs(f"{data}/profiles")
    shutil.copytree(f"{src}/profiles/gpus", f"{data}/profiles/gpus")
    shutil.copy(f"{src}/profiles/models.json", f"{data}/profiles/models.json")
    os.symlink(f"{src}/profiles/measured", f"{data}/profiles/measured")
    target, within = ("gpus/h100-sxm.json", ()) if rng.random() < 0.6 else ("models.json", ("models", model))
    path = f"{data}/profiles/{target}"
    doc = json.load(open(path))
    what, text = mutate(doc, within)
    with open(path, "w") as f:
        f.write(text if text is not None else json.dumps(doc, indent=1))
    return data, f"profiles/{target}: {what}"


failures = ran = refused = 0
with tempfile.TemporaryDirectory() as tmp:
    os.symlink(f"{src}/scenarios/traces", f"{tmp}/traces")  # scenarios name traces relative to themselves
    for run in range(runs):
        name = rng.choice(names)
        doc = json.load(open(f"{src}/scenarios/{name}"))
        workload = doc.get("workload", {})
        if "num_requests" in workload:
            workload["num_requests"] = min(workload["num_requests"], 200)  # quick runs
        scenario, out = f"{tmp}/s{run}.json", f"{tmp}/out{run}"
        cmd = [pdsim]
        if rng.random() < 0.2 and isinstance(doc.get("model"), str):
            data, what = data_dir_with(tmp, run, doc["model"])
            cmd += ["--data-dir", data]
            text = None
        else:
            what, text = mutate(doc)
        with open(scenario, "w") as f:
            f.write(text if text is not None else json.dumps(doc, indent=1))
        case = f"run {run}: {name}, {what}"
        try:
            r = subprocess.run(cmd + ["run", scenario, "--out", out, "--quiet"], capture_output=True, text=True,
                               timeout=60)
        except subprocess.TimeoutExpired:
            print(f"FAIL {case}: no answer in 60 s")
            failures += 1
            continue
        err = r.stderr.strip().splitlines()
        done = os.path.exists(f"{out}/summary.json") and os.path.exists(f"{out}/requests.csv")
        if r.returncode == 0 and done:
            verdict = None
            ran += 1
        elif r.returncode == 2 and len(err) == 1 and not os.path.exists(f"{out}/summary.json"):
            refused += 1
            named = any(s in err[0] for s in (scenario, "/traces/", "/profiles/"))
            verdict = None if named else "the error names no file"
        else:
            verdict = f"exit {r.returncode}, {len(err)} stderr lines, outputs {'complete' if done else 'absent'}"
        if verdict:
            failures += 1
            print(f"FAIL {case}: {verdict}\n  " + "\n  ".join(err[-5:]))
            with open(scenario) as f:
                print("  scenario: " + f.read().replace("\n", " ")[:2000])
print(f"{runs} mutated scenarios: {ran} ran, {refused} refused with one line, {failures} failures")
sys.exit(1 if failures else 0)
