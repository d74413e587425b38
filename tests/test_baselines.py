"""Baselines of the tabular track (pipeline.fit.baselines): sane accuracies on a bundled set,
seeded determinism, the Grinsztajn search spaces, and the network -> tree feature map."""

import numpy as np
import pytest
import torch

from pipeline.data import prepare_dataset
from pipeline.fit.baselines import (
    BASELINES,
    FeatureMap,
    fit_baseline,
    fit_knn,
    fit_xgboost,
    proba_function,
    sample_forest_params,
    sample_xgboost_params,
)


@pytest.fixture(scope="module")
def breast_cancer():
    return {f: prepare_dataset("breast_cancer", seed=0, cache_dir=False, features=f) for f in ("network", "tree")}


@pytest.mark.parametrize(
    "name,options,floor",
    [
        ("linear", {"Cs": [0.1, 1.0]}, 0.93),
        ("knn", {"ks": [3, 10]}, 0.93),
        ("xgboost", {"n_configs": 3, "n_estimators": 200}, 0.93),
        ("random_forest", {"n_configs": 2, "max_estimators": 60}, 0.93),
    ],
)
def test_baselines_are_accurate_on_breast_cancer(breast_cancer, name, options, floor):
    data = breast_cancer[BASELINES[name]]
    result = fit_baseline(name, data, seed=0, **options)
    # breast_cancer: every one of these models reaches 93-98 % test accuracy
    assert floor <= result.test_acc <= 1.0
    assert result.val_acc == max(t["val_acc"] for t in result.trials)
    assert result.summary()["n_trials"] == len(result.trials) >= 1


def test_xgboost_search_is_seeded_and_deterministic(breast_cancer):
    a = fit_xgboost(breast_cancer["tree"], n_configs=3, seed=1, n_estimators=100)
    b = fit_xgboost(breast_cancer["tree"], n_configs=3, seed=1, n_estimators=100)
    assert a.params == b.params and a.test_acc == b.test_acc
    assert [t["val_acc"] for t in a.trials] == [t["val_acc"] for t in b.trials]
    assert a.trials[0]["params"] == {}  # the library defaults come first
    assert "n_trees" in a.params


def test_search_spaces_stay_in_the_grinsztajn_ranges():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = sample_xgboost_params(rng)
        assert 1 <= p["max_depth"] <= 11 and 1 <= p["min_child_weight"] <= 100
        assert 1e-5 <= p["learning_rate"] <= 0.7 and 0.5 <= p["subsample"] <= 1
        assert 1 <= p["reg_lambda"] <= 4 and 1e-8 <= p["reg_alpha"] <= 100 and 1e-8 <= p["gamma"] <= 7
        f = sample_forest_params(rng, max_estimators=50)
        assert 10 <= f["n_estimators"] <= 50 and f["max_depth"] in (None, 2, 3, 4)
        assert 1 <= f["min_samples_leaf"] <= 51


def test_feature_map_sends_network_rows_back_to_their_raw_values(breast_cancer):
    net, tree = breast_cancer["network"], breast_cancer["tree"]
    fmap = FeatureMap.fit(net.X_train, tree.X_train, net.feature_names, tree.feature_names)
    assert fmap is not None
    back = fmap(torch.as_tensor(net.X_train[:50]))
    np.testing.assert_allclose(back, tree.X_train[:50], rtol=1e-5, atol=1e-5)
    # the function seen through the map is the tree model's function on raw features
    result = fit_baseline("random_forest", tree, seed=0, n_configs=1, max_estimators=20)
    probs = proba_function(result.estimator, fmap)(torch.as_tensor(net.X_train[:20]))
    np.testing.assert_allclose(probs.numpy(), result.estimator.predict_proba(tree.X_train[:20]), atol=1e-6)
    assert FeatureMap.fit(net.X_train, tree.X_train[:, :3], net.feature_names, tree.feature_names[:3]) is None


def test_bad_budgets_are_rejected_naming_the_value(breast_cancer):
    with pytest.raises(ValueError, match="ks must be a non-empty list of positive ints, got \\[0\\]"):
        fit_knn(breast_cancer["network"], ks=[0])
    with pytest.raises(ValueError, match="n_configs must be a positive int, got 0"):
        fit_xgboost(breast_cancer["tree"], n_configs=0)
    with pytest.raises(ValueError, match="unknown baseline 'svm'"):
        fit_baseline("svm", breast_cancer["network"])
