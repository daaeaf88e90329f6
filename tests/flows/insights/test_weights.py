from __future__ import annotations

import numpy as np
import pytest

from flows.insights.moments import Comoments
from flows.insights.weights import relative_weights, relative_weights_stack, sample_covariances
from tests.flows.insights.mtcars import MTCARS


def johnson_direct(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Johnson (2000) as first written: orthogonal counterparts Z of X by SVD, then regressions."""
    live = x.std(axis=0) > 0
    xs = (x[:, live] - x[:, live].mean(axis=0)) / x[:, live].std(axis=0, ddof=1)
    ys = (y - y.mean()) / y.std(ddof=1)
    u, _, vt = np.linalg.svd(xs, full_matrices=False)
    z = u @ vt * np.sqrt(len(y) - 1)  # the closest orthonormal (scaled) counterpart of xs
    beta = np.linalg.lstsq(z, ys, rcond=None)[0]  # y on Z
    lam = np.linalg.lstsq(z, xs, rcond=None)[0]  # each X_j on Z: lam[k, j]
    out = np.zeros(x.shape[1])
    out[live] = (lam**2).T @ beta**2
    return out


def test_the_textbook_example_of_the_rwa_package() -> None:
    # rwa(mtcars, "mpg", c("cyl", "disp", "hp", "gear")): R^2 0.7791896, raw weights below
    data = np.array(MTCARS, dtype=float)
    cov = np.cov(np.column_stack([data[:, 1:], data[:, 0]]), rowvar=False)
    weights = relative_weights(cov)
    assert weights == pytest.approx([0.2284797, 0.2221469, 0.2321744, 0.0963886], abs=1e-7)
    assert weights.sum() == pytest.approx(0.7791896, abs=1e-7)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_streamed_co_moments_give_the_direct_computation_to_1e9(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = 400, 7
    mix = rng.normal(size=(k, k))
    x = rng.normal(size=(n, k)) @ mix  # correlated predictors
    x[:, 3] = (x[:, 3] > 0).astype(float)  # a dummy
    x[:, 5] = 2.0  # no variance: weight 0
    y = x @ rng.normal(size=k) + rng.normal(scale=3.0, size=n)
    moments = Comoments(k + 1)
    for row in np.column_stack([x, y]):
        moments.add(tuple(row))
    streamed = relative_weights(moments.covariance())
    direct = johnson_direct(x, y)
    assert np.max(np.abs(streamed - direct)) < 1e-9
    assert streamed[5] == 0.0
    # the weights add up to the R^2 of the least-squares fit
    design = np.column_stack([np.ones(n), np.delete(x, 5, axis=1)])
    fit = design @ np.linalg.lstsq(design, y, rcond=None)[0]
    r2 = 1 - np.sum((y - fit) ** 2) / np.sum((y - y.mean()) ** 2)
    assert abs(streamed.sum() - r2) < 1e-9


def test_the_stacked_form_equals_one_at_a_time() -> None:
    rng = np.random.default_rng(4)
    sample = rng.normal(size=(5, 50, 4))
    sample[..., 3] += sample[..., 0]
    covs = sample_covariances(sample)
    stacked = relative_weights_stack(covs)
    for b in range(5):
        assert np.allclose(
            stacked[b], relative_weights(np.cov(sample[b], rowvar=False)), atol=1e-12
        )


def test_redundant_predictors_share_without_breaking() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(size=300)
    x = np.column_stack([a, a, rng.normal(size=300)])  # two identical columns
    y = a + rng.normal(size=300)
    w = relative_weights(np.cov(np.column_stack([x, y]), rowvar=False))
    assert np.all(np.isfinite(w))
    assert w[0] == pytest.approx(w[1])
    design = np.column_stack([np.ones(300), x[:, 0], x[:, 2]])
    fit = design @ np.linalg.lstsq(design, y, rcond=None)[0]
    r2 = 1 - np.sum((y - fit) ** 2) / np.sum((y - y.mean()) ** 2)
    assert w.sum() == pytest.approx(r2, abs=1e-9)  # R^2 of the fit without the copy


def test_two_outcomes_at_once_equal_each_alone() -> None:
    rng = np.random.default_rng(6)
    sample = rng.normal(size=(4, 80, 5))
    sample[..., 3] += sample[..., 0]
    sample[..., 4] = (sample[..., 3] > 0).astype(float)
    covs = sample_covariances(sample)
    both = relative_weights_stack(covs, outcomes=2)
    for o, col in enumerate((3, 4)):
        idx = [0, 1, 2, col]
        alone = relative_weights_stack(covs[:, idx][:, :, idx])
        assert np.allclose(both[:, o], alone, atol=1e-12)
