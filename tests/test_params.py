"""params.yaml is checked before any work: unknown keys, wrong types and unknown names are
rejected with a message naming the key and the allowed values."""

import copy
from pathlib import Path

import pytest
import yaml

from stages.params import load_params, stage_params, track_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def params():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def _write(tmp_path, params):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_the_shipped_params_are_valid_and_profiles_resolve(params, tmp_path):
    assert load_params(ROOT / "params.yaml")["profile"] == "quick"
    quick = track_params(params, "algorithmic")
    assert quick["tasks"] == params["algorithmic"]["profiles"]["quick"]["tasks"]
    params["profile"] = "paper"
    paper = stage_params("algorithmic", _write(tmp_path, params))
    assert paper["steps"] == params["algorithmic"]["profiles"]["paper"]["steps"]
    assert paper["recipe"] == quick["recipe"] and paper["runner"]["kind"] == "threads"


@pytest.mark.parametrize(
    "edit,needles",
    [
        (lambda p: p["algorithmic"]["recipe"].update(widht=3), ["algorithmic.recipe.widht", "'width'"]),
        (lambda p: p.update(profile="fast"), ["'fast'", "quick", "paper"]),
        (lambda p: p["algorithmic"]["meta"].update(n_max="many"), ["algorithmic.meta.n_max", "int", "'many'"]),
        (lambda p: p["algorithmic"]["meta"].update(init="swish"), ["'swish'", "relu"]),
        (lambda p: p["algorithmic"]["meta"].update(keep="first"), ["algorithmic.meta.keep", "'first'", "last"]),
        (lambda p: p["algorithmic"]["profiles"]["quick"].update(tasks=["add_mod27", "pow_mod7"]), ["'pow_mod7'", "add_mod27"]),
        (lambda p: p["algorithmic"].update(controls=["relu", "swish"]), ["'swish'", "random_spline"]),
        (lambda p: p["algorithmic"].update(profile="gpu"), ["algorithmic.profile", "'gpu'", "cpu"]),
        (lambda p: p["algorithmic"]["profiles"]["cpu"]["transfer"].update(stop_after_95="soon"),
         ["algorithmic.profiles.cpu.transfer.stop_after_95", "'soon'"]),
        (lambda p: p["runner"].update(kind="slurm"), ["runner", "kind", "'slurm'", "dask"]),
        (lambda p: p.update(device="tpu"), ["device", "'tpu'", "cuda"]),
        (lambda p: p["tabular"]["protocol"].update(group_by=["eye_movements"]),
         ["tabular.protocol.group_by", "{eye_movements: assgNo}", "['eye_movements']"]),
        (lambda p: p["tabular"]["protocol"].update(group_by={"eye_movement": "assgNo"}),
         ["tabular.protocol.group_by", "['eye_movement']", "'eye_movements'"]),
        (lambda p: p["tabular"]["protocol"].update(group_by={"electricity": "date"}, order_by={"electricity": "date"}),
         ["tabular.protocol", "['electricity'] in both group_by and order_by"]),
    ],
)
def test_bad_params_are_rejected_naming_key_and_allowed_values(params, tmp_path, edit, needles):
    bad = copy.deepcopy(params)
    edit(bad)
    with pytest.raises(ValueError) as err:
        load_params(_write(tmp_path, bad))
    for needle in needles:
        assert needle in str(err.value)


def test_a_track_profile_overrides_the_global_one(params):
    params["algorithmic"]["profile"] = "cpu"
    cpu = track_params(params, "algorithmic")
    assert cpu["profile"] == "cpu"
    assert cpu["transfer"]["tasks"] == params["algorithmic"]["profiles"]["cpu"]["transfer"]["tasks"]
    assert len(cpu["transfer"]["tasks"]) == 12 and "profiles" not in cpu
    params["algorithmic"]["profile"] = None
    assert track_params(params, "algorithmic")["profile"] == params["profile"]
