"""The algorithmic train stage's units before (one ``train_model`` run per unit, git ``--rev``) and
after (one population unit per :func:`unit_groups` group), and one transfer-like group
(K spline-AF MLPs on add_mod27, full batch) as a loop of ``train_model`` vs one population.

    .venv/bin/python benchmarks/bench_algorithmic_train.py [--rev HEAD] [--rounds 2] [--group-steps 500]

Part 1 runs every unit of the quick profile's :func:`planned_runs` through the units' functions
(``train_unit.fn``: no Prefect, no result caching) on a pool of ``runner.max_workers`` threads, as
the stage's thread runner would, each version in its own subprocess (the old one imports the
``pipeline`` package of ``--rev``), alternating old, new, old, new ... so that load from other
processes affects both alike. The AFs are ``artifacts/algorithmic/afs/*.json`` where present (an
AF missing there is replaced by another one found there: the timing needs a spline, not that AF).
Part 2 times the transfer-like group in this process, interleaved. One torch thread per unit.
Writes ``reports/benchmarks/algorithmic_train.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, environment, write_json

CHILD = r"""
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[1])
mode, afs = sys.argv[2], Path(sys.argv[3])
from stages.params import load_params, track_params
import pipeline.flows.algorithmic as alg
assert alg.__file__.startswith(sys.argv[1]), alg.__file__
raw = load_params(Path(sys.argv[4]))
params = track_params(raw, "algorithmic")
plan = alg.planned_runs(params)
present = sorted(afs.glob("*.json"))
present = [p for p in present if not p.name.endswith(".history.json")]
specs = {}
for name in alg.af_names(params):
    path = afs / f"{name}.json"
    specs[name] = json.loads((path if path.is_file() else present[0]).read_text())
def sin_f(r):
    return params["sin_frequency"] if r["activation_name"] == "sin" else None
started = time.perf_counter()
with ThreadPoolExecutor(raw["runner"]["max_workers"]) as pool:
    if mode == "old":
        futures = [pool.submit(alg.train_unit.fn, r["task"], r["activation_name"], specs[r["af"]] if r["af"] else None,
                               params["recipe"], r["fraction"], r["width"], r["steps"], sin_f(r), r["seed"], r["stop_after_95"])
                   for r in plan]
        rows = [f.result() for f in futures]
    else:
        futures = []
        for (task, fraction, width, seed, steps, stop), members in alg.unit_groups(plan):
            runs = [{"activation_name": plan[i]["activation_name"],
                     "activation_spec": specs[plan[i]["af"]] if plan[i]["af"] else None,
                     "sin_frequency": sin_f(plan[i])} for i in members]
            futures.append((members, pool.submit(alg.train_unit.fn, task, fraction, width, seed, steps, stop, runs,
                                                 params["recipe"])))
        rows = [None] * len(plan)
        for members, f in futures:
            for i, row in zip(members, f.result()):
                rows[i] = row
seconds = time.perf_counter() - started
summary = [[r["activation"], r["task"], r["seed"], r["fraction"], r["width"], r["steps_to_95"], r["curve"][-1]["step"]] for r in rows]
print(json.dumps({"seconds": seconds, "runs": len(rows), "summary": summary}))
"""


def flow_units(rev: str, rounds: int) -> dict:
    old_dir = Path(tempfile.mkdtemp(prefix="alg_old_"))
    archive = subprocess.run(["git", "archive", "--format=tar", rev, "pipeline", "stages", "params.yaml"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old_dir)], input=archive, check=True)
    script = old_dir / "child.py"
    script.write_text(CHILD)
    afs = ROOT / "artifacts" / "algorithmic" / "afs"
    samples: dict[str, list[dict]] = {"old": [], "new": []}
    for _ in range(rounds):
        for mode, code in (("old", old_dir), ("new", ROOT)):
            load = os.getloadavg()[0]
            out = subprocess.run([sys.executable, str(script), str(code), mode, str(afs), str(ROOT / "params.yaml")],
                                 cwd=ROOT, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"{mode} failed:\n{out.stderr[-3000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result.update(load_before=load, load_after=os.getloadavg()[0])
            samples[mode].append(result)
            print(f"{mode}: {result['seconds']:.1f} s for {result['runs']} runs (load {load:.1f} -> {result['load_after']:.1f})", flush=True)
    same_steps = [a[5] == b[5] for a, b in zip(samples["old"][0]["summary"], samples["new"][0]["summary"])]
    return {"old": [{k: v for k, v in s.items() if k != "summary"} for s in samples["old"]],
            "new": [{k: v for k, v in s.items() if k != "summary"} for s in samples["new"]],
            "runs_with_equal_steps_to_95": f"{sum(same_steps)}/{len(same_steps)}",
            "old_summary": samples["old"][0]["summary"], "new_summary": samples["new"][0]["summary"]}


def transfer_group(k: int, steps: int, rounds: int) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from pipeline.data.synthetic import algorithmic_task
    from pipeline.fit.grokking import Recipe, _one_hot_mlp, control_activation
    from pipeline.fit.population import train_population
    from pipeline.fit.train import train_model
    from pipeline.nn import seeded

    torch.set_num_threads(1)
    data = algorithmic_task("add_mod27", train_fraction=0.55, seed=0)
    data.X_val, data.y_val = data.X_test, data.y_test
    recipe = Recipe()  # width 256, full batch, as params.yaml
    config = recipe.train_config(steps)
    acts = []
    for seed in range(k):
        act = control_activation("random_spline", seed=seed)
        act.values.requires_grad_(False)
        acts.append(act)

    def build():
        models = []
        for act in acts:
            with seeded(0):
                models.append(_one_hot_mlp(data.X_train.shape[1], data.n_classes, recipe.width, act))
        return models

    times: dict[str, list[float]] = {"loop": [], "population": []}
    for _ in range(rounds):
        models = build()
        started = time.perf_counter()
        for m in models:
            train_model(m, data, "classification", config, 0)
        times["loop"].append(time.perf_counter() - started)
        models = build()
        started = time.perf_counter()
        train_population(models, data, "classification", [config] * k, [0] * k)
        times["population"].append(time.perf_counter() - started)
        print(f"group of {k}: loop {times['loop'][-1]:.1f} s, population {times['population'][-1]:.1f} s "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
    return {"k": k, "steps": steps, "width": recipe.width, "n_train": int(data.X_train.shape[0]), **times,
            "ratio_per_round": [l / p for l, p in zip(times["loop"], times["population"])]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD", help="the git revision of the old units")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--group-k", type=int, default=14)
    parser.add_argument("--group-steps", type=int, default=500)
    parser.add_argument("--skip-flow", action="store_true")
    args = parser.parse_args()
    result = {"benchmark": "algorithmic_train", "environment": environment(), "rev": args.rev}
    result["transfer_group"] = transfer_group(args.group_k, args.group_steps, args.rounds)
    if not args.skip_flow:
        result["flow_units"] = flow_units(args.rev, args.rounds)
    write_json("algorithmic_train", result)


if __name__ == "__main__":
    main()
