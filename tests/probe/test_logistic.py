from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from tests.probe.synthetic import class_features
from vlkit.probe.logistic import fit_logistic_regression


def _sklearn(features: torch.Tensor, labels: torch.Tensor, c: float) -> LogisticRegression:
    return LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(features.numpy(), labels.numpy())


@pytest.mark.parametrize("c", [0.05, 1.0, 50.0])
def test_the_fit_reaches_sklearns_multinomial_solution_for_the_same_c(c):
    features, labels = class_features(40, 5, seed=1)
    features = features.double()
    ours = fit_logistic_regression(features, labels, 5, c, max_iter=10_000, tol=1e-10, dtype=torch.float64)
    theirs = _sklearn(features, labels, c)
    np.testing.assert_allclose(ours.weight.numpy(), theirs.coef_, atol=1e-5)
    # the softmax is unchanged by a shift of every bias, which sklearn leaves where its solver stopped
    centred = theirs.intercept_ - theirs.intercept_.mean()
    np.testing.assert_allclose((ours.bias - ours.bias.mean()).numpy(), centred, atol=1e-5)
    probabilities = ours.logits(features).softmax(dim=-1).numpy()
    np.testing.assert_allclose(probabilities, theirs.predict_proba(features.numpy()), atol=1e-6)


def test_two_classes_give_sklearns_binary_solution_for_the_same_c():
    features, labels = class_features(60, 2, noise=1.5, seed=2)
    features = features.double()
    ours = fit_logistic_regression(features, labels, 2, 3.0, max_iter=10_000, tol=1e-10, dtype=torch.float64)
    theirs = _sklearn(features, labels, 3.0)
    np.testing.assert_allclose((ours.weight[1] - ours.weight[0]).numpy(), theirs.coef_[0], atol=1e-6)
    np.testing.assert_allclose(float(ours.bias[1] - ours.bias[0]), theirs.intercept_[0], atol=1e-6)


def test_the_default_tolerance_converges_and_predicts_as_sklearn_does():
    features, labels = class_features(50, 4, noise=1.2, seed=3)
    ours = fit_logistic_regression(features, labels, 4, 10.0)
    assert ours.converged and 0 < ours.iterations < 1000
    theirs = LogisticRegression(C=10.0, max_iter=1000).fit(features.double().numpy(), labels.numpy())
    agree = (ours.logits(features).argmax(-1).numpy() == theirs.predict(features.double().numpy())).mean()
    assert agree >= 0.99


def test_the_fit_is_deterministic_and_stops_at_max_iter():
    features, labels = class_features(30, 3, seed=4)
    first = fit_logistic_regression(features, labels, 3, 1e4)
    again = fit_logistic_regression(features, labels, 3, 1e4)
    assert torch.equal(first.weight, again.weight) and torch.equal(first.bias, again.bias)
    capped = fit_logistic_regression(features, labels, 3, 1e4, max_iter=3)
    assert capped.iterations == 3 and not capped.converged


def test_a_class_without_examples_gets_a_row_that_is_never_predicted():
    features, labels = class_features(30, 3, seed=5)
    probe = fit_logistic_regression(features, labels, 4, 1.0)
    assert probe.weight.shape == (4, features.shape[1])
    assert (probe.logits(features).argmax(-1) != 3).all()
