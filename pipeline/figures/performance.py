"""The report's Performance section: the benchmark records of ``benchmarks/`` (issue 8), read from
``reports/benchmarks/{spline,population,meta_memory,tabular_units,stages}.json``, with the
acceptance targets.

Each benchmark writes its JSON when it is run (``.venv/bin/python benchmarks/bench_<name>.py``);
the section prints what it finds, says which records are missing and how to make them, and states
when and on what each was measured (the ratios are side-by-side measurements in one process; the
stage times are absolute and move with the machine's load).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["BENCHMARKS", "report_section"]

#: The benchmark records, in the order of the section: name -> (title, command).
BENCHMARKS = {
    "spline": ("Spline AF versus ReLU", "benchmarks/bench_spline.py"),
    "population": ("Populations of MLPs versus a loop", "benchmarks/bench_population.py"),
    "meta_memory": ("Meta-learning outer step: time and memory", "benchmarks/bench_meta_memory.py"),
    "tabular_units": ("Tabular training units: populations versus a loop", "benchmarks/bench_tabular_units.py"),
    "stages": ("End-to-end time of each stage (quick profile)", "benchmarks/bench_stages.py"),
}


def _load(root: Path, name: str) -> dict | None:
    path = root / f"{name}.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def _measured_on(record: dict) -> str:
    env = record.get("environment", {})
    load = env.get("load_average")
    device = env.get("cuda") or f"{env.get('cpu_count', '?')}-core CPU"
    if record.get("benchmark") != "stages":  # the stages run in their own processes, with their own threads
        device += f", {env.get('torch_threads', '?')} torch thread(s)"
    where = f"measured {env.get('time', '?')} on {device}, torch {env.get('torch', '?')}"
    return where + (f", load average {load[0]:.1f}" if load else "")


def _verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("**met**" if met else "**not met**")


def _spline(record: dict) -> list[str]:
    results, acc = record["results"], record.get("acceptance", {})
    names = {"relu": "ReLU", "spline_frozen": "spline, values frozen (ordinary training)",
             "spline": "spline, values require grad (meta-learning)", "spline_reference": "straightforward spline"}
    names.update({k: f"previous kernel ({k.split('_at_')[1]})" for k in results.get("train_step", {}) if "_at_" in k})
    lines = ["| case | activation alone, x ReLU | training step of a 4 x 256 MLP, x ReLU |", "|---|---|---|"]
    for key, label in names.items():
        a, s = results.get("activation", {}).get(key), results.get("train_step", {}).get(key)
        if a is None and s is None:
            continue
        cell = lambda r: "" if r is None else f"{r['ratio_to_relu']:.2f}x"  # noqa: E731
        lines.append(f"| {label} | {cell(a)} | {cell(s)} |")
    relu = results.get("train_step", {}).get("relu", {}).get("median_s")
    lines += ["", f"ReLU training step: {1e3 * relu:.1f} ms." if relu else ""]
    if "train_step_ratio" in acc:
        lines.append(f"- Acceptance: training step with a shared spline AF <= {acc['train_step_ratio_max']}x ReLU: "
                     f"{acc['train_step_ratio']:.2f}x, {_verdict(acc.get('met'))}.")
    return lines


def _population(record: dict) -> list[str]:
    results, acc = record["results"], record.get("acceptance", {})
    lines = ["| MLP (K models) | loop model-steps/s | population model-steps/s | speedup |", "|---|---|---|---|"]
    for key, r in results.items():
        activation = key.split("_d")[0]
        lines.append(f"| depth {r['depth']}, width {r['width']}, {activation} (K = {r['k']}) | "
                     f"{r['loop']['model_steps_per_s']:.0f} | {r['population']['model_steps_per_s']:.0f} | "
                     f"{r['speedup']:.2f}x |")
    lines.append("")
    for key, ratio in acc.get("speedups", {}).items():
        lines.append(f"- Acceptance: {key} throughput >= {acc['speedup_min']}x the loop: {ratio:.2f}x, "
                     f"{_verdict(acc.get('met', {}).get(key))}.")
    return lines


def _meta_memory(record: dict) -> list[str]:
    rows, acc = record["results"], record.get("acceptance", {})
    lines = ["| n_tr | truncation | seconds | peak MiB |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['n_tr']} | {r['truncation'] or 'full unroll'} | {r['seconds']:.2f} | {r['peak_mib']:.0f} |")
    if "peak_200_k20_over_20" in acc:
        lines += ["", f"- Acceptance: peak memory at n_tr = 200 with truncation K = 20 within {acc['ratio_max']}x of "
                      f"n_tr = 20: {acc['peak_200_k20_over_20']:.2f}x, {_verdict(acc.get('met'))}."]
    return lines


def _tabular_units(record: dict) -> list[str]:
    lines = ["| dataset / family | configs | loop s | populations s | speedup |", "|---|---|---|---|---|"]
    for key, r in record["results"].items():
        lines.append(f"| {key} | {r['configs']} | {r['loop_s']:.2f} | {r['population_s']:.2f} | {r['speedup']:.2f}x |")
    total = record["total"]
    lines.append(f"| **all** | | **{total['loop_s']:.2f}** | **{total['population_s']:.2f}** | **{total['speedup']:.2f}x** |")
    return lines


def _stages(record: dict) -> list[str]:
    results = record["results"]
    lines = ["| stage | seconds | |", "|---|---|---|"]
    for stage, r in results.items():
        if stage.startswith("_"):
            continue
        status = "" if r.get("returncode", 0) == 0 else f"failed (exit {r['returncode']})"
        lines.append(f"| {stage} | {r['seconds']:.1f} | {status} |")
    lines.append(f"| **all stages** | **{record.get('total_seconds', 0):.1f}** | |")
    noop = results.get("_noop_repro")
    notes = [""]
    if noop:
        notes.append(f"- `dvc repro` of the unchanged tree afterwards: {noop['seconds']:.1f} s"
                     + (", nothing reran." if not noop.get("stages_rerun") else f"; reran {noop['stages_rerun']}."))
    if not record.get("complete", False):
        notes.append(f"- Incomplete record (stages {record.get('settings', {}).get('stages')}; failed: "
                     f"{record.get('failed')}).")
    return lines + notes


_SECTIONS = {"spline": _spline, "population": _population, "meta_memory": _meta_memory,
             "tabular_units": _tabular_units, "stages": _stages}


def report_section(bench_dir: str | Path) -> list[str]:
    """Markdown lines of the Performance section from the records under ``bench_dir``
    (``reports/benchmarks``); a missing or unreadable record is named with the command that makes it.

    Example::

        >>> report_section("/nonexistent")[2].startswith("No benchmark record")
        True
    """
    root = Path(bench_dir)
    records = {name: _load(root, name) for name in BENCHMARKS}
    lines = ["Ratios are measured side by side in one process (interleaved repetitions, medians), so that load "
             "from other processes cancels; stage times are absolute. Targets: issue 8.", ""]
    if not any(records.values()):
        return lines + [f"No benchmark record under `{root}`: run `.venv/bin/python benchmarks/bench_<name>.py` "
                        f"({', '.join(BENCHMARKS)})."]
    for name, (title, command) in BENCHMARKS.items():
        lines += [f"### {title}", ""]
        record = records[name]
        if record is None:
            lines += [f"Not measured yet: no `{root.name}/{name}.json` (run `.venv/bin/python {command}`).", ""]
            continue
        try:
            body = _SECTIONS[name](record)
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as err:
            body = [f"`{name}.json` does not have the expected layout ({type(err).__name__}: {err}); rerun `{command}`."]
        lines += [f"`{command}`, {_measured_on(record)}.", ""] + body + [""]
    return lines
