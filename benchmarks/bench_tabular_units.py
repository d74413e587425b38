"""The tabular track's training units: every config of each family's search trained as populations
(``train_config_rows``, what the train stage runs) versus one ``train_model`` per config (the loop
the stage ran before populations).

    .venv/bin/python benchmarks/bench_tabular_units.py [--datasets tree_task breast_cancer] [--repeats 3]

Uses the quick profile of params.yaml (its families, search budget, steps, patience and TV paths)
on bundled datasets (offline, prepared in memory: no cache is written), seed 0. The learned
activations the AF and IAF families need are stand-ins (a perturbed ReLU spline, identity IAFs):
training costs the same whatever their values. Both sides build the same models and include what a
unit computes per config (training with early stopping, test accuracy, total variation). Times are
medians of interleaved repetitions in one process. Writes ``reports/benchmarks/tabular_units.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from types import SimpleNamespace

import torch
import yaml

from _common import ROOT, environment, table, write_json
from pipeline.complexity import total_variation
from pipeline.data import prepare_dataset
from pipeline.fit.tabular import FAMILY_VARIANTS, iaf_to_dict, softmax_function
from pipeline.fit.train import evaluate_model, train_model
from pipeline.flows import tabular as T
from pipeline.nn import InputActivations, SplineActivation


def stand_in_learned(d_in: int, n_knots: int, interval) -> dict:
    """Learned activations of the right shapes for every variant (values do not change the cost)."""
    af = SplineActivation(n_knots=n_knots, interval=tuple(interval), init="relu")
    with torch.no_grad():
        af.values.add_(0.05 * torch.linspace(-1, 1, n_knots))
    spec = af.to_dict()
    iaf = iaf_to_dict(InputActivations(d_in, n_knots=n_knots, interval=tuple(interval)))
    return {"af_relu": {"af": spec}, "af_zeros": {"af": spec}, "af_per_layer": {"af": [spec, spec]},
            "iaf_linear": {"iaf": iaf}, "iaf_relu": {"iaf": iaf}, "iaf_af": {"iaf": iaf, "af": spec}}


def loop_rows(family, configs, learned, data, train, seed) -> list[dict]:
    """The train stage's units before populations: one train_model per config, then test accuracy
    and TV (the former ``fit_network``)."""
    rows = []
    for c in configs:
        model = T.build_config_model(family, c, learned.get(c.get("variant")), data, seed)
        lean = SimpleNamespace(X_train=data.X_train, y_train=data.y_train, X_val=data.X_val, y_val=data.y_val,
                               X_test=data.X_test[:0], y_test=data.y_test[:0])
        result = train_model(model, lean, "classification", T.train_config(train, bool(c.get("finetune"))), seed)
        _, test_acc = evaluate_model(model, torch.as_tensor(data.X_test, dtype=torch.float32),
                                     torch.as_tensor(data.y_test, dtype=torch.long), "classification")
        tv = total_variation(softmax_function(model), torch.as_tensor(data.X_train, dtype=torch.float32),
                             n_paths=train["tv"]["n_paths"], n_points=train["tv"]["n_points"], seed=seed)
        rows.append({"val_acc": result.metrics["val_acc"], "test_acc": test_acc, "tv": tv, "best_step": result.best_step})
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["tree_task", "breast_cancer"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after one warm-up round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    params = T.resolve_params(yaml.safe_load((ROOT / "params.yaml").read_text()))
    train = T.train_context(params)
    results, rows = {}, []
    totals = {"loop": 0.0, "population": 0.0}
    for name in args.datasets:
        data = prepare_dataset(name, seed=args.seed, cache_dir=False, features="network", max_train=params["max_train"],
                               max_eval=params["max_eval"], train_fraction=params["protocol"]["train_fraction"],
                               val_fraction=params["protocol"]["val_fraction"])
        learned_all = stand_in_learned(data.X_train.shape[1], params["meta"]["n_knots"], params["meta"]["interval"])
        for family in params["families"]:
            configs = T.family_configs(family, params, args.seed)
            learned = {v: learned_all[v] for v in FAMILY_VARIANTS.get(family, ())}
            runs = {"loop": lambda: loop_rows(family, configs, learned, data, train, args.seed),
                    "population": lambda: T.train_config_rows(family, configs, learned, data, train, args.seed)}
            samples = {k: [] for k in runs}
            for rep in range(args.repeats + 1):
                for key, run in runs.items():
                    started = time.perf_counter()
                    out = run()
                    if rep:
                        samples[key].append(time.perf_counter() - started)
                    if rep == 0 and key == "loop":
                        loop_out = out
                    elif rep == 0:
                        agree = sum(a["best_step"] == b["best_step"] for a, b in zip(loop_out, out))
            med = {k: statistics.median(v) for k, v in samples.items()}
            for k in totals:
                totals[k] += med[k]
            ratio = med["loop"] / med["population"]
            results[f"{name}/{family}"] = {"configs": len(configs), "loop_s": med["loop"], "population_s": med["population"],
                                           "speedup": ratio, "same_best_step": agree}
            rows.append([name, family, len(configs), med["loop"], med["population"], f"{ratio:.2f}x", f"{agree}/{len(configs)}"])
            print(f"  {name} {family}: loop {med['loop']:.2f} s, population {med['population']:.2f} s", flush=True)
    overall = totals["loop"] / totals["population"]
    rows.append(["all", "", "", totals["loop"], totals["population"], f"{overall:.2f}x", ""])
    print(f"tabular training units of the quick profile (seed {args.seed}; training, test accuracy and TV per config), "
          f"{torch.get_num_threads()} thread(s), medians of {args.repeats}")
    print(table(rows, ["dataset", "family", "configs", "loop s", "population s", "speedup", "same best step (float32)"]))
    payload = {"benchmark": "tabular_units", "settings": {**vars(args), "profile": params["profile"]},
               "environment": environment(), "results": results,
               "total": {"loop_s": totals["loop"], "population_s": totals["population"], "speedup": overall}}
    print(f"wrote {write_json('tabular_units', payload, args.out)}")
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
