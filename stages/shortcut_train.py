"""Stage shortcut_train: ReLU, the fixed-activation controls, AF-mnist, AF-cifar, IAF-mnist, IAF-cifar
and the unambiguous ReLU upper bounds on the collages, every seed (the models that share a training
view trained as populations), with trajectories and TV (complexity folded in)
-> artifacts/shortcut/runs.json, reports/metrics/shortcut.json, reports/tables/shortcut.json."""

from pipeline.flows.runners import make_task_runner
from pipeline.flows.shortcut import train_flow

from .images_metalearn import data_config
from .params import stage_params
from .shortcut_metalearn import OUT as AF_DIR

RUNS = "artifacts/shortcut/runs.json"
METRICS = "reports/metrics/shortcut.json"
SUMMARY = "reports/tables/shortcut.json"

if __name__ == "__main__":
    params = stage_params("shortcut")
    train_flow.with_options(task_runner=make_task_runner(params["runner"]))(
        params, data_config(), AF_DIR, RUNS, METRICS, SUMMARY)
