"""Stage shortcut_metalearn: AF-mnist and AF-cifar (the hidden layers' AF), IAF-mnist and IAF-cifar
(one input activation per pixel) by Algorithm 1 with V = the MNIST- or the CIFAR-predictive
validation collages -> artifacts/shortcut/afs/ (activations, histories, data.json).

Collage preparation is folded in (``prepare_dataset("collages")`` caches them under
artifacts/prepared; from the mirror's MNIST and CIFAR-10 when configured, else bundled digits).
"""

from pipeline.flows.runners import make_task_runner
from pipeline.flows.shortcut import metalearn_flow

from .images_metalearn import data_config
from .params import stage_params

OUT = "artifacts/shortcut/afs"

if __name__ == "__main__":
    params = stage_params("shortcut")
    metalearn_flow.with_options(task_runner=make_task_runner(params["runner"]))(params, data_config(), OUT)
