"""A population of K MLPs trained as one batched computation versus a Python loop over them.

    .venv/bin/python benchmarks/bench_population.py [--k 32] [--widths 64 256] [--threads 1]

Both sides run the real training functions on the same models, data, seeds and per-model learning
rates / weight decays: ``train_population`` once, and ``train_model`` once per model. Work is
identical (same steps, same evaluations; patience off so that every model runs every step).
Reports model-steps per second and the ratio, for a ReLU MLP and for an MLP whose shared spline AF
differs per model (one learned activation per model, as in the paper's grids), and the largest
weight difference between the two. Timings are medians of interleaved repetitions in one process
(each repetition is a whole training run; copying the models is not timed).
Writes ``reports/benchmarks/population.json``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from types import SimpleNamespace

import torch

from _common import environment, table, write_json
from pipeline.fit.population import population_configs, train_population
from pipeline.fit.train import TrainConfig, train_model
from pipeline.nn import SplineActivation, make_mlp

ACCEPT_RATIO = 3.0


def make_data(n_train=2000, n_val=500, n_test=500, d=20, n_classes=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    n = n_train + n_val + n_test
    X = torch.randn(n, d, generator=gen)
    w = torch.randn(d, n_classes, generator=gen)
    y = (torch.tanh(X @ w) + 0.3 * torch.randn(n, n_classes, generator=gen)).argmax(1)
    a, b = n_train, n_train + n_val
    return SimpleNamespace(X_train=X[:a], y_train=y[:a], X_val=X[a:b], y_val=y[a:b], X_test=X[b:], y_test=y[b:])


def make_models(k, width, depth, d, n_classes, activation):
    models = []
    for seed in range(k):
        torch.manual_seed(seed)
        if activation == "spline":
            act = SplineActivation(init="relu")
            with torch.no_grad():  # a different learned AF per model
                act.values.add_(0.05 * torch.randn(act.n_knots))
        else:
            act = activation
        models.append(make_mlp(d, n_classes, depth, width, activation=act))
    return models


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=32, help="models in the population (default 32)")
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2], help="hidden layers (2: the tabular track's meta MLP)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--activations", nargs="+", default=["relu", "spline"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds after one warm-up round")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = make_data()
    d, n_classes = data.X_train.shape[1], 2
    base = TrainConfig(steps=args.steps, batch_size=args.batch_size, eval_every=50, patience=None)
    lrs = [10 ** (-3 + i / max(1, args.k - 1)) for i in range(args.k)]  # 1e-3 .. 1e-2
    wds = [(0.0, 1e-4, 1e-2, 1e-1)[i % 4] for i in range(args.k)]
    configs = population_configs(base, lr=lrs, weight_decay=wds)
    seeds = list(range(args.k))
    results, rows = {}, []
    for activation, depth, width in [(a, dp, w) for a in args.activations for dp in args.depths for w in args.widths]:
        template = make_models(args.k, width, depth, d, n_classes, activation)
        out, samples = {}, {"loop": [], "population": []}
        runs = {
            "population": lambda ms: train_population(ms, data, "classification", configs, seeds),
            "loop": lambda ms: [train_model(m, data, "classification", c, s) for m, c, s in zip(ms, configs, seeds)],
        }
        for rep in range(args.repeats + 1):  # the first round warms up, interleaved A B A B ...
            for name, run in runs.items():
                fresh = copy.deepcopy(template)  # copying is not timed
                started = time.perf_counter()
                out[name] = run(fresh)
                if rep:
                    samples[name].append(time.perf_counter() - started)
        timed = {name: {"median_s": statistics.median(v), "min_s": min(v), "repeats": len(v)} for name, v in samples.items()}
        max_diff = max(
            (a - b).abs().max().item()
            for rp, rl in zip(out["population"], out["loop"])
            for a, b in zip(rp.model.parameters(), rl.model.parameters())
        )
        model_steps = args.k * args.steps
        entry = {
            name: {**t, "model_steps_per_s": model_steps / t["median_s"]} for name, t in timed.items()
        }
        ratio = timed["loop"]["median_s"] / timed["population"]["median_s"]
        entry.update({"speedup": ratio, "max_weight_diff": max_diff, "k": args.k, "depth": depth, "width": width})
        results[f"{activation}_d{depth}_w{width}"] = entry
        rows.append([activation, depth, width, entry["loop"]["model_steps_per_s"], entry["population"]["model_steps_per_s"],
                     f"{ratio:.2f}x", f"{max_diff:.1e}"])
        print(f"  {activation} depth {depth} width {width}: loop {timed['loop']['median_s']:.2f} s, population {timed['population']['median_s']:.2f} s", flush=True)
    print(f"population of K={args.k} MLPs (batch {args.batch_size}, {args.steps} steps, AdamW, per-model lr/wd) vs a loop of train_model; {torch.get_num_threads()} thread(s), medians of {args.repeats}")
    print(table(rows, ["activation", "depth", "width", "loop model-steps/s", "population model-steps/s", "speedup", "max |w diff| (float32)"]))
    print("(float32 weight differences come from Adam amplifying last-bit differences between batched and single\n"
          " matmuls over the steps; in float64 the two agree to 1e-10: tests/test_population.py)")
    checked = {key: r["speedup"] for key, r in results.items() if key.startswith("relu_") and r["width"] == 64}
    acceptance = {"speedup_min": ACCEPT_RATIO, "speedups": checked, "met": {key: v >= ACCEPT_RATIO for key, v in checked.items()}}
    for key, v in checked.items():
        print(f"acceptance (K={args.k} width-64 throughput >= {ACCEPT_RATIO}x the loop), {key}: {'met' if v >= ACCEPT_RATIO else 'NOT met'} ({v:.2f}x)")
    payload = {
        "benchmark": "population",
        "settings": {**vars(args), "data": "synthetic 2000/500/500 x 20, 2 classes", "eval_every": 50},
        "environment": environment(),
        "results": results,
        "acceptance": acceptance,
    }
    print(f"wrote {write_json('population', payload, args.out)}")
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
