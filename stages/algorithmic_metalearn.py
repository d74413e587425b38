"""Stage algorithmic_metalearn: one AF per task by Algorithm 1 -> artifacts/algorithmic/afs/."""

from pipeline.flows.algorithmic import metalearn_flow
from pipeline.flows.runners import limit_torch_threads, make_task_runner

from .params import stage_params

OUT = "artifacts/algorithmic/afs"

if __name__ == "__main__":
    params = stage_params("algorithmic")
    limit_torch_threads(params["runner"])
    metalearn_flow.with_options(task_runner=make_task_runner(params["runner"]))(params, OUT)
