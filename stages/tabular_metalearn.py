"""Stage tabular_metalearn: Algorithm 1 on each training split for every AF/IAF variant
-> artifacts/tabular/activations/ (<dataset>/<variant>.s<seed>.json and learned.json)."""

from pipeline.flows.runners import make_task_runner
from pipeline.flows.tabular import metalearn_flow

from .tabular_prepare import DATASETS, tabular_params

OUT = "artifacts/tabular/activations"
LEARNED = f"{OUT}/learned.json"

if __name__ == "__main__":
    params = tabular_params()
    metalearn_flow.with_options(task_runner=make_task_runner(params["runner"]))(params, DATASETS, OUT)
