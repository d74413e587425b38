"""Stage algorithmic_train: ReLU, learned AF and controls on every task and seed
-> artifacts/algorithmic/runs.json, reports/metrics/algorithmic.json."""

from pipeline.flows.algorithmic import train_flow
from pipeline.flows.runners import limit_torch_threads, make_task_runner

from .algorithmic_metalearn import OUT as AF_DIR
from .params import stage_params

RUNS = "artifacts/algorithmic/runs.json"
METRICS = "reports/metrics/algorithmic.json"

if __name__ == "__main__":
    params = stage_params("algorithmic")
    limit_torch_threads(params["runner"])
    train_flow.with_options(task_runner=make_task_runner(params["runner"]))(params, AF_DIR, RUNS, METRICS)
