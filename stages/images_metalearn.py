"""Stage images_metalearn: Algorithm 1 for every learned-AF variant, image set and task of the
active profile -> artifacts/images/afs/ (the AFs, their histories, datasets.json).

Data preparation is folded into this stage and the next (``prepare_dataset`` caches the prepared
arrays under artifacts/prepared); which sets are used is decided here (datasets.json).
"""

from pipeline.flows.images import metalearn_flow, resolve_data_config
from pipeline.flows.runners import make_task_runner

from .params import load_params, stage_params

OUT = "artifacts/images/afs"


def data_config() -> dict | None:
    """params.yaml's ``data`` section (source, mirror), the mirror resolved from the environment."""
    return resolve_data_config(load_params().get("data"))


if __name__ == "__main__":
    params = stage_params("images")
    metalearn_flow.with_options(task_runner=make_task_runner(params["runner"]))(params, data_config(), OUT)
