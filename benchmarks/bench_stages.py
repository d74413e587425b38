"""The end-to-end wall time of each DVC stage of the quick profile, in a fresh copy of the repository.

    .venv/bin/python benchmarks/bench_stages.py [--stages tabular_prepare tabular_metalearn tabular_train] [--rev REV] [--keep]

Copies the tracked files (``git ls-files``, with uncommitted edits; or those of ``--rev``) into a
temporary folder, so that no cached result of this checkout (``.prefect_results/``, ``artifacts/``,
the DVC cache) is reused and the checkout's own outputs are left alone; runs the quick profile offline there (no data
mirror: ``data.mirror`` as in params.yaml, ``PIPELINE_DATA_MIRROR`` unset) with one shared Prefect
server, as ``make repro`` does; and times every stage in the order of the DAG with
``dvc repro --force --single-item STAGE`` (a stage's time includes DVC's hashing and lock writing,
as in a real run). Then times a ``dvc repro`` of the unchanged tree (nothing should rerun). Writes
``reports/benchmarks/stages.json`` in this checkout.

Unlike the other benchmarks this one compares nothing side by side: its times are absolute and
move with the machine's load, which it records (load average before and after every stage). The
full run took about 10 minutes on 2 loaded cores. To compare two versions of a stage, run them one
after the other, e.g. ``--stages tabular_prepare tabular_metalearn tabular_train --rev REV --out
DIR`` and the same without ``--rev``, alternating (a stage needs the outputs of those before it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from _common import ROOT, environment, table, write_json

BIN = Path(sys.executable).parent


def copy_repo(dest: Path, rev: str | None = None) -> None:
    """The tracked files of this checkout (working-tree versions), or of the git revision ``rev``,
    in ``dest``, a git repository."""
    if rev is not None:
        archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
        return
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in filter(None, files.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)


def stage_order(dvc_yaml: dict) -> list[str]:
    """The stages of ``dvc.yaml`` in an order where each runs after the stages whose outs it
    depends on (file order among independent stages)."""
    stages = dvc_yaml["stages"]

    def paths(entries) -> list[str]:
        out = []
        for entry in entries or []:
            out += list(entry) if isinstance(entry, dict) else [entry]
        return [str(p).rstrip("/") for p in out]

    outs = {name: paths(spec.get("outs")) + paths(spec.get("metrics")) + paths(spec.get("plots")) for name, spec in stages.items()}

    def needs(name: str) -> set[str]:
        deps = paths(stages[name].get("deps"))
        return {
            other for other, produced in outs.items() if other != name
            for d in deps for o in produced if d == o or d.startswith(o + "/") or o.startswith(d + "/")
        }

    order: list[str] = []
    pending = list(stages)
    while pending:
        ready = [s for s in pending if needs(s) <= set(order)]
        if not ready:
            raise ValueError(f"dvc.yaml has a dependency cycle among {pending}")
        order.append(ready[0])
        pending.remove(ready[0])
    return order


def run(cmd: list[str], cwd: Path, env: dict, timeout: float) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - started, done.returncode, done.stdout + done.stderr


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", default=None, help="only these stages (in DAG order; default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy (its path is printed)")
    parser.add_argument("--rev", default=None, help="time this git revision instead of the working tree")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per stage")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    order = stage_order(yaml.safe_load((ROOT / "dvc.yaml").read_text()))
    if args.stages:
        unknown = sorted(set(args.stages) - set(order))
        if unknown:
            raise SystemExit(f"unknown stages {unknown}: dvc.yaml has {order}")
        order = [s for s in order if s in args.stages]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if params.get("profile") != "quick":
        raise SystemExit(f"params.yaml has profile: {params.get('profile')!r}; this benchmark times the quick profile")

    describe = ["git", "describe", "--always"] + ([args.rev] if args.rev else ["--dirty"])
    commit = subprocess.run(describe, cwd=ROOT, capture_output=True, text=True).stdout.strip()
    workdir = Path(tempfile.mkdtemp(prefix="bench_stages_"))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1", "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "RAY_USAGE_STATS_ENABLED": "0"}
    for key in ("PREFECT_API_URL", "PREFECT_HOME", "PIPELINE_DATA_MIRROR", "PIPELINE_DATA_CACHE"):
        env.pop(key, None)  # the copy's own Prefect home and caches; offline: no mirror
    server = [sys.executable, "-m", "pipeline.flows.server"]
    rows, results, failed = [], {}, None
    try:
        copy_repo(workdir, args.rev)
        print(f"copy of the repository: {workdir}", flush=True)
        seconds, rc, log = run([*server, "start"], workdir, env, 300)
        if rc:
            raise SystemExit(f"could not start the Prefect server:\n{log[-2000:]}")
        api = log.strip().splitlines()[-1] if log.strip() else None
        env["PREFECT_API_URL"] = api if api and api.startswith("http") else env.get("PREFECT_API_URL", "")
        if not env["PREFECT_API_URL"]:
            env.pop("PREFECT_API_URL")
        results["_server_start"] = {"seconds": seconds}
        for stage in order:
            load_before = os.getloadavg()[0]
            seconds, rc, log = run([str(BIN / "dvc"), "repro", "--force", "--single-item", stage], workdir, env, args.timeout)
            results[stage] = {"seconds": seconds, "returncode": rc, "load_before": load_before, "load_after": os.getloadavg()[0]}
            rows.append([stage, seconds, "ok" if rc == 0 else f"FAILED ({rc})", f"{load_before:.1f} / {os.getloadavg()[0]:.1f}"])
            print(f"  {stage}: {seconds:.1f} s{'' if rc == 0 else ' FAILED'}", flush=True)
            if rc:
                failed = stage
                results[stage]["log_tail"] = log[-3000:]
                print(log[-3000:], file=sys.stderr)
                break
        if failed is None and not args.stages:
            seconds, rc, log = run([str(BIN / "dvc"), "repro"], workdir, env, 600)
            reran = [line for line in log.splitlines() if line.startswith("Running stage")]
            results["_noop_repro"] = {"seconds": seconds, "returncode": rc, "stages_rerun": reran}
            rows.append(["(dvc repro, unchanged tree)", seconds, "ok" if rc == 0 and not reran else f"reran {reran}", ""])
    finally:
        subprocess.run([*server, "stop"], cwd=workdir, env=env, capture_output=True)
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    stage_seconds = {s: r["seconds"] for s, r in results.items() if not s.startswith("_")}
    total = sum(stage_seconds.values())
    print(f"stages of the quick profile (offline, fresh copy, dvc repro --force --single-item), {os.cpu_count()} cores")
    print(table(rows + [["total (stages)", total, "", ""]], ["stage", "seconds", "status", "load before / after"]))
    payload = {
        "benchmark": "stages",
        "settings": {"profile": "quick", "mirror": params.get("data", {}).get("mirror"), "stages": order, "commit": commit,
                     "command": "dvc repro --force --single-item STAGE, in DAG order, fresh copy, one Prefect server"},
        "environment": environment(),
        "results": results,
        "total_seconds": total,
        "complete": failed is None and not args.stages,
        "failed": failed,
    }
    print(f"wrote {write_json('stages', payload, args.out)}")
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
