"""Spline activation versus ReLU: the activation alone and a whole training step.

    .venv/bin/python benchmarks/bench_spline.py [--threads 1] [--repeats 15] [--device cpu] [--compare-rev REV]

Cases, measured side by side in one process (interleaved repetitions, medians):

- the activation alone: forward + backward on a 512 x 256 tensor, for ReLU, the spline kernel
  with trainable values, the spline kernel with frozen values (``requires_grad=False``), and the
  straightforward spline (bucketize + gather + lerp under autograd, ``spline_eval_reference``);
- a training step (forward, backward, AdamW step) of a 4 x 256 MLP at batch 512, with ReLU; with
  one shared SplineActivation whose values are frozen (``requires_grad=False``: ordinary training,
  what ``pipeline.fit.train.train_model`` does with a learned AF); with the values requiring a
  gradient (computed, as when activations are trained or meta-learned, though the optimiser here
  leaves them alone); and with the straightforward spline;
- with ``--compare-rev REV``, both also with the kernel of git revision ``REV`` (before/after).

Prints a table of medians and ratios to ReLU and writes ``reports/benchmarks/spline.json``.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from _common import environment, interleaved, table, write_json
from pipeline.nn import SplineActivation, make_mlp
from pipeline.nn.spline import spline_eval_reference

ACCEPT_STEP_RATIO = 1.3


class RevisionSpline(nn.Module):
    """The spline kernel of another git revision of ``pipeline/nn/spline.py`` (before/after)."""

    def __init__(self, module, act: SplineActivation):
        super().__init__()
        self.module, self.act = module, act

    def forward(self, x):
        return self.module.spline_eval(x, self.act.values, self.act.interval, self.act.extrapolation, self.act.knots)


def load_revision(rev: str):
    """``pipeline/nn/spline.py`` as it was at git revision ``rev``, imported as a separate module."""
    import importlib.util
    import subprocess
    import tempfile
    from pathlib import Path

    from _common import ROOT

    source = subprocess.run(["git", "show", f"{rev}:pipeline/nn/spline.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / f"spline_{rev}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"spline_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ReferenceSpline(nn.Module):
    """The straightforward spline: bucketize + gather + lerp, differentiated by autograd."""

    def __init__(self, act: SplineActivation):
        super().__init__()
        self.act = act

    def forward(self, x):
        return spline_eval_reference(x, self.act.values, self.act.interval, self.act.extrapolation)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def activation_cases(device, n=512, width=256, revision=None):
    gen = torch.Generator().manual_seed(0)
    x = (2 * torch.randn(n, width, generator=gen)).to(device)
    grad = torch.randn(n, width, generator=gen).to(device)
    relu = nn.ReLU()
    trainable = SplineActivation(init="relu").to(device)
    frozen = SplineActivation(init="relu").to(device)
    frozen.values.requires_grad_(False)
    reference = ReferenceSpline(SplineActivation(init="relu").to(device))

    def case(module):
        def run():
            xx = x.detach().requires_grad_()
            module(xx).backward(grad)
            _sync(device)

        return run

    cases = {
        "relu": case(relu),
        "spline": case(trainable),
        "spline_frozen": case(frozen),
        "spline_reference": case(reference),
    }
    if revision is not None:
        cases[f"spline_at_{revision[1]}"] = case(RevisionSpline(revision[0], SplineActivation(init="relu").to(device)))
    return cases


def step_cases(device, batch=512, width=256, depth=4, d_in=256, n_classes=10, revision=None):
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(batch, d_in, generator=gen).to(device)
    y = torch.randint(n_classes, (batch,), generator=gen).to(device)

    def setup(activation):
        torch.manual_seed(0)
        model = make_mlp(d_in, n_classes, depth, width, activation=activation).to(device)
        frozen_ids = {id(m.values) for m in model.modules() if isinstance(m, SplineActivation)}
        opt = torch.optim.AdamW([p for p in model.parameters() if id(p) not in frozen_ids], lr=1e-3)

        def run():
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(X), y).backward()
            opt.step()
            _sync(device)

        return run

    frozen = SplineActivation(init="relu")
    frozen.values.requires_grad_(False)
    cases = {
        "relu": setup("relu"),
        "spline": setup(SplineActivation(init="relu")),
        "spline_frozen": setup(frozen),
        "spline_reference": setup(ReferenceSpline(SplineActivation(init="relu"))),
    }
    if revision is not None:
        cases[f"spline_at_{revision[1]}"] = setup(RevisionSpline(revision[0], SplineActivation(init="relu")))
    return cases


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=None, help="folder for the JSON (default reports/benchmarks)")
    parser.add_argument("--compare-rev", default=None, help="also time the kernel of this git revision (before/after)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    revision = (load_revision(args.compare_rev), args.compare_rev) if args.compare_rev else None
    results = {}
    for group, cases, inner in (("activation", activation_cases(device, revision=revision), 10), ("train_step", step_cases(device, revision=revision), 3)):
        timed = interleaved(cases, repeats=args.repeats, inner=inner)
        base = timed["relu"]["median_s"]
        for name, t in timed.items():
            t["ratio_to_relu"] = t["median_s"] / base
        results[group] = timed

    rows = [
        [group, name, t["median_s"] * 1e3, f"{t['ratio_to_relu']:.2f}x"]
        for group, timed in results.items()
        for name, t in timed.items()
    ]
    print(f"spline activation vs ReLU ({device}, {torch.get_num_threads()} thread(s), medians of {args.repeats} interleaved rounds)")
    print(table(rows, ["benchmark", "case", "ms", "vs ReLU"]))
    step_ratio = results["train_step"]["spline_frozen"]["ratio_to_relu"]
    grad_ratio = results["train_step"]["spline"]["ratio_to_relu"]
    verdict = "met" if step_ratio <= ACCEPT_STEP_RATIO else "NOT met"
    print(
        f"acceptance (training step with a shared, learned (frozen) AF <= {ACCEPT_STEP_RATIO}x ReLU): {verdict} "
        f"({step_ratio:.2f}x; {grad_ratio:.2f}x when the AF's values also get a gradient)"
    )
    payload = {
        "benchmark": "spline",
        "settings": {"activation_shape": [512, 256], "mlp": "4 x 256, d_in 256, 10 classes, AdamW", "batch": 512,
                     "threads": torch.get_num_threads(), "device": str(device), "repeats": args.repeats,
                     "compare_rev": args.compare_rev},
        "environment": environment(),
        "results": results,
        "acceptance": {"train_step_ratio_max": ACCEPT_STEP_RATIO, "train_step_ratio": step_ratio,
                       "train_step_ratio_values_grad": grad_ratio, "met": step_ratio <= ACCEPT_STEP_RATIO},
    }
    path = write_json("spline", payload, args.out)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
