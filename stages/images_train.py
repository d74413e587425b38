"""Stage images_train: ReLU and the learned AFs over the width x lr grid and seeds on every set
and task (one unit per set, task, width and seed, its models trained as populations); TV of every
model (the complexity step is folded in here)
-> artifacts/images/runs.json, reports/metrics/images.json, reports/tables/images.json."""

from pipeline.flows.images import train_flow
from pipeline.flows.runners import make_task_runner

from .images_metalearn import OUT as AF_DIR
from .images_metalearn import data_config
from .params import stage_params

RUNS = "artifacts/images/runs.json"
METRICS = "reports/metrics/images.json"
SUMMARY = "reports/tables/images.json"

if __name__ == "__main__":
    params = stage_params("images")
    train_flow.with_options(task_runner=make_task_runner(params["runner"]))(
        params, data_config(), AF_DIR, RUNS, METRICS, SUMMARY)
