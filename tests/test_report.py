"""The report's algorithmic section and the headline numbers, from metrics built by the track's
own summarise/transfer_scores."""

import json

from pipeline.figures.report import build_report, headline
from pipeline.flows.algorithmic import summarise, transfer_scores


def _run(task, activation, seed, steps_to_95, acc=1.0, budget=2000):
    return {"task": task, "activation": activation, "seed": seed, "steps_to_95": steps_to_95,
            "final_test_acc": acc, "final_train_acc": 1.0, "tv": 3.0, "curve": [{"step": budget}]}


def test_algorithmic_section_and_headline(tmp_path):
    main = [_run("add_mod27", "relu", s, v) for s, v in enumerate([1200, 1100, 1250])]
    main += [_run("add_mod27", "af", s, v) for s, v in enumerate([60, 58, 66])]
    main += [_run("add_mod27", "sin", s, v) for s, v in enumerate([650, 700, 600])]
    main += [_run("add_mod27", "tanh", s, None, acc=0.8) for s in range(3)]
    transfer = [_run("add_mod27", "af_add_mod27", 0, 50), _run("add_mod27", "relu", 0, 1000),
                _run("add_mod27", "af_all_tasks", 0, 100), _run("sub_mod27", "af_add_mod27", 0, None, acc=0.5),
                _run("sub_mod27", "relu", 0, 800), _run("sub_mod27", "af_all_tasks", 0, 200),
                _run("sub_mod27", "af_sub_mod27", 0, 40)]
    metrics = summarise(main)
    metrics["transfer"] = transfer_scores(transfer)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "algorithmic.json").write_text(json.dumps(metrics))

    report = build_report(tmp_path)
    assert "| add_mod27 | af | 60 | 60, 58, 66 |" in report
    assert "| add_mod27 | tanh | never | never, never, never |" in report
    # ReLU median 1200 / AF median 60; the best control (sin, median 650) / 60
    assert "add_mod27: ReLU needs 20.0x the steps of the learned AF; the best non-learned control needs 10.8x." in report
    assert "Transfer (paper Fig. 14) over 2 tasks (the paper: 22)" in report
    # task-specific: add 50/50, sub 40/40 -> 100; ReLU: 50/1000, 40/800 -> 5.0; all-task: 50/100, 40/200 -> 35.0
    assert "| task_specific | 100.0 | 54.0 |" in report
    assert "| relu | 5.0 | 19.9 |" in report
    assert "| all_tasks | 35.0 | 61.5 |" in report

    numbers = headline(tmp_path)["algorithmic"]
    assert numbers["add_mod27"] == {"steps_to_95_relu": 1200, "steps_to_95_af": 60, "relu_over_af": 20.0,
                                    "best_control_over_af": 10.83}
    assert numbers["transfer_column_mean"] == {"task_specific": 100.0, "relu": 5.0, "all_tasks": 35.0}


def test_the_report_links_each_recorded_run_by_its_title(tmp_path):
    from pipeline.figures.report import build_report

    for name, title in (("tabular-cpu", "Tabular track, `cpu` profile: a recorded run"), ("shortcut-x", "Shortcut run")):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "report.md").write_text(f"# {title}\n\ntext\n")
    text = build_report(tmp_path)
    assert "## Recorded runs" in text
    assert "- [Tabular track, `cpu` profile: a recorded run](runs/tabular-cpu/report.md)" in text
    assert "- [Shortcut run](runs/shortcut-x/report.md)" in text
    assert "## Recorded runs" not in build_report(tmp_path / "empty")
