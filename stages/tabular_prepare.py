"""Stage tabular_prepare: every dataset x seed of the profile (Grinsztajn splits, network and tree
features) -> artifacts/tabular/datasets.json (absent datasets listed as skipped, with the reason)."""

from pipeline.flows.runners import make_task_runner
from pipeline.flows.tabular import prepare_flow, resolve_params

from .params import load_params

DATASETS = "artifacts/tabular/datasets.json"


def tabular_params() -> dict:
    """params.yaml, checked, as the tabular stages read it (active profile merged, data resolved)."""
    return resolve_params(load_params())


if __name__ == "__main__":
    params = tabular_params()
    prepare_flow.with_options(task_runner=make_task_runner(params["runner"]))(params, DATASETS)
