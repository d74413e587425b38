"""Stage tabular_train: baselines and every network config of the search budget, with the TV of
each trained model (the complexity measure of Fig. 6 is computed here), plus the reuse runs of
Fig. 8 -> artifacts/tabular/runs.json, artifacts/tabular/trained_iafs (the IAFs of the selected IAF & ReLU
model of every dataset and seed, as trained; Fig. 8 reuses them), reports/metrics/tabular.json,
reports/tables/tabular.json."""

from pipeline.flows.runners import make_task_runner
from pipeline.flows.tabular import train_flow

from .tabular_metalearn import LEARNED
from .tabular_prepare import DATASETS, tabular_params

RUNS = "artifacts/tabular/runs.json"
METRICS = "reports/metrics/tabular.json"
SUMMARY = "reports/tables/tabular.json"
TRAINED_IAFS = "artifacts/tabular/trained_iafs"

if __name__ == "__main__":
    params = tabular_params()
    flow = train_flow.with_options(task_runner=make_task_runner(params["runner"]))
    flow(params, DATASETS, LEARNED, RUNS, METRICS, SUMMARY, TRAINED_IAFS)
