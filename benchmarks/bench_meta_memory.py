"""Memory and time of one meta-learning outer step (Algorithm 1) against the inner horizon n_tr,
with and without truncation of the hypergradient.

    .venv/bin/python benchmarks/bench_meta_memory.py [--horizons 10 20 50 200] [--truncations none 20]

Each configuration runs in its own subprocess, so that its peak is clean: the peak resident memory
(``ru_maxrss``) during the outer step minus the level after a warm-up step of horizon 1 (on a GPU:
``torch.cuda.max_memory_allocated``). An outer step is what :func:`pipeline.meta.meta_learn` does
per step: ``episodes`` episodes, each with fresh weights, ``n_tr`` inner Adam steps on the full
episode batch and one backward pass of the validation loss to the activation's values.
Writes ``reports/benchmarks/meta_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from _common import environment, table, write_json

ACCEPT_RATIO = 1.5


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(n_tr: int, truncation: int | None, args) -> dict:
    """One configuration, in this process: a warm-up step of horizon 1, then the measured step."""
    from pipeline.meta import InnerOptimizer, fresh_weights, meta_modules_of, unrolled_validation_loss
    from pipeline.nn import SplineActivation, make_mlp

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(2 * args.rows, args.d_in, generator=gen).to(device)
    y = torch.randint(args.classes, (2 * args.rows,), generator=gen).to(device)
    Xt, yt, Xv, yv = X[: args.rows], y[: args.rows], X[args.rows :], y[args.rows :]
    act = SplineActivation(init="relu").to(device)
    model = make_mlp(args.d_in, args.classes, args.depth, args.width, activation=act).to(device)
    meta = meta_modules_of(model)
    psi = {name: p for name, p in model.named_parameters() if p is act.values}
    inner = InnerOptimizer("adam", lr=1e-2)

    def outer_step(horizon: int) -> None:
        act.values.grad = None
        for episode in range(args.episodes):
            theta0 = {k: v.to(device) for k, v in fresh_weights(model, meta, seed=episode).items()}
            loss, _ = unrolled_validation_loss(model, psi, theta0, [(Xt, yt)] * horizon, Xv, yv, "classification", inner, truncation)
            (loss / args.episodes).backward()
        if device.type == "cuda":
            torch.cuda.synchronize()

    outer_step(1)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    base_rss = _rss_mib()
    started = time.perf_counter()
    outer_step(n_tr)
    seconds = time.perf_counter() - started
    peak = (torch.cuda.max_memory_allocated() / 2**20 - base) if device.type == "cuda" else _rss_mib() - base_rss
    grad_norm = float(act.values.grad.norm())
    return {"n_tr": n_tr, "truncation": truncation, "seconds": seconds, "peak_mib": peak, "meta_grad_norm": grad_norm,
            "measure": "cuda max_memory_allocated" if device.type == "cuda" else "ru_maxrss increase"}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizons", type=int, nargs="+", default=[10, 20, 50, 200])
    parser.add_argument("--truncations", nargs="+", default=["none", "20"], help="'none' (full unroll) or K")
    parser.add_argument("--rows", type=int, default=512, help="rows of T' and of V per episode")
    parser.add_argument("--d-in", type=int, default=64)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--episodes", type=int, default=2, help="episodes per outer step (MetaConfig default 2)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=None)
    parser.add_argument("--worker", nargs=2, metavar=("N_TR", "TRUNCATION"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        n_tr, trunc = int(args.worker[0]), None if args.worker[1] == "none" else int(args.worker[1])
        print(json.dumps(worker(n_tr, trunc, args)))
        return {}

    passthrough = ["--rows", str(args.rows), "--d-in", str(args.d_in), "--classes", str(args.classes), "--depth", str(args.depth),
                   "--width", str(args.width), "--episodes", str(args.episodes), "--threads", str(args.threads), "--device", args.device]
    runs = []
    for trunc in args.truncations:
        for n_tr in args.horizons:
            cmd = [sys.executable, __file__, "--worker", str(n_tr), trunc] + passthrough
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            run = json.loads(done.stdout.strip().splitlines()[-1])
            runs.append(run)
            print(f"  n_tr {n_tr:4d} truncation {trunc:>4}: {run['seconds']:7.2f} s, peak +{run['peak_mib']:8.1f} MiB", flush=True)

    def find(n_tr, trunc):
        return next((r for r in runs if r["n_tr"] == n_tr and r["truncation"] == trunc), None)

    rows = []
    for r in runs:
        full = find(r["n_tr"], None)
        rows.append([r["n_tr"], "none" if r["truncation"] is None else r["truncation"], r["seconds"], r["peak_mib"],
                     f"{r['peak_mib'] / full['peak_mib']:.2f}" if full and r["truncation"] is not None else ""])
    print(f"one outer step of Algorithm 1 ({args.episodes} episodes, MLP {args.d_in}-{'-'.join([str(args.width)] * args.depth)}-{args.classes} "
          f"with a shared spline AF, {args.rows} rows, inner Adam; {args.device}, {args.threads} thread(s))")
    print(table(rows, ["n_tr", "truncation", "seconds", "peak MiB", "vs full unroll"]))
    acceptance = {}
    long, short = find(200, 20), find(20, 20) or find(20, None)
    if long and short:
        ratio = long["peak_mib"] / short["peak_mib"]
        acceptance = {"ratio_max": ACCEPT_RATIO, "peak_200_k20_over_20": ratio, "met": ratio <= ACCEPT_RATIO}
        print(f"acceptance (peak at n_tr=200, K=20 within {ACCEPT_RATIO}x of n_tr=20): {'met' if acceptance['met'] else 'NOT met'} ({ratio:.2f}x)")
    payload = {"benchmark": "meta_memory", "settings": {k: v for k, v in vars(args).items() if k != "worker"},
               "environment": environment(), "results": runs, "acceptance": acceptance}
    print(f"wrote {write_json('meta_memory', payload, args.out)}")
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
