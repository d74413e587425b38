"""The report's Performance section (pipeline.figures.performance): the benchmark records of
reports/benchmarks/*.json with their acceptance targets, and a clear note for a missing record."""

import json

from pipeline.figures.performance import report_section
from pipeline.figures.report import build_report

ENV = {"time": "2026-12-05T00:10:00+0000", "cpu_count": 2, "torch_threads": 1, "torch": "2.13.0+cpu",
       "load_average": [3.25, 2.0, 1.0], "cuda": None}


def _population():
    entry = lambda loop, pop, ratio, depth: {"loop": {"model_steps_per_s": loop}, "population": {"model_steps_per_s": pop},  # noqa: E731
                                              "speedup": ratio, "k": 32, "depth": depth, "width": 64}
    return {"benchmark": "population", "environment": ENV,
            "results": {"relu_d1_w64": entry(2000.0, 7400.0, 3.7, 1), "relu_d2_w64": entry(1500.0, 4200.0, 2.8, 2)},
            "acceptance": {"speedup_min": 3.0, "speedups": {"relu_d1_w64": 3.7, "relu_d2_w64": 2.8},
                           "met": {"relu_d1_w64": True, "relu_d2_w64": False}}}


def _stages():
    return {"benchmark": "stages", "environment": ENV, "total_seconds": 70.5, "complete": True, "failed": None,
            "settings": {"stages": ["tabular_prepare", "tabular_train"]},
            "results": {"_server_start": {"seconds": 4.0},
                        "tabular_prepare": {"seconds": 12.25, "returncode": 0},
                        "tabular_train": {"seconds": 58.25, "returncode": 0},
                        "_noop_repro": {"seconds": 1.5, "returncode": 0, "stages_rerun": []}}}


def test_records_are_printed_with_their_targets_and_missing_ones_are_named(tmp_path):
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "population.json").write_text(json.dumps(_population()))
    (bench / "stages.json").write_text(json.dumps(_stages()))
    text = "\n".join(report_section(bench))
    assert "| depth 1, width 64, relu (K = 32) | 2000 | 7400 | 3.70x |" in text
    assert "relu_d1_w64 throughput >= 3.0x the loop: 3.70x, **met**" in text
    assert "relu_d2_w64 throughput >= 3.0x the loop: 2.80x, **not met**" in text
    assert "| tabular_train | 58.2 |  |" in text and "| **all stages** | **70.5** | |" in text
    assert "unchanged tree afterwards: 1.5 s, nothing reran" in text
    assert "load average 3.2" in text and "2026-12-05T00:10:00" in text
    # the two records not written are named, with the command that makes them
    assert "no `benchmarks/spline.json` (run `.venv/bin/python benchmarks/bench_spline.py`)" in text
    assert "no `benchmarks/meta_memory.json`" in text
    assert "no `benchmarks/tabular_units.json` (run `.venv/bin/python benchmarks/bench_tabular_units.py`)" in text


def test_the_report_has_the_section_even_without_records_and_survives_a_bad_record(tmp_path):
    report = build_report(tmp_path)
    assert "## Performance" in report and "No benchmark record" in report
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "spline.json").write_text(json.dumps({"environment": ENV, "results": []}))  # wrong layout
    (bench / "meta_memory.json").write_text("{not json")
    text = "\n".join(report_section(bench))
    assert "`spline.json` does not have the expected layout" in text
    assert "no `benchmarks/meta_memory.json`" in text  # unreadable counts as missing
