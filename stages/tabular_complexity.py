"""Stage tabular_complexity: the views of Fig. 7 on the focus dataset (function slices of the
selected ReLU, TanH, AF, IAF and XGBoost models; complexity landscapes) -> artifacts/tabular/views.json.
(The TV of every trained model, Fig. 6, is measured in tabular_train.)"""

from pipeline.flows.runners import make_task_runner
from pipeline.flows.tabular import complexity_flow

from .tabular_metalearn import LEARNED
from .tabular_prepare import DATASETS, tabular_params
from .tabular_train import METRICS, RUNS

VIEWS = "artifacts/tabular/views.json"

if __name__ == "__main__":
    params = tabular_params()
    complexity_flow.with_options(task_runner=make_task_runner(params["runner"]))(params, DATASETS, LEARNED, RUNS, METRICS, VIEWS)
