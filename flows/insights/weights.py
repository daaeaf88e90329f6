"""Johnson's relative weights from a covariance matrix, one at a time or stacked.

Johnson (2000): with ``R`` the predictors' correlation matrix and ``r`` their
correlations with the outcome, ``R = P diag(l) P'`` gives ``L = R^(1/2)``; the
outcome's regression on the orthogonal counterparts ``Z`` of the predictors has
weights ``b = R^(-1/2) r``, and predictor ``j``'s raw relative weight is
``sum_k L[j, k]^2 b[k]^2``. The raw weights sum to the model's R^2. A predictor
without variance gets weight 0 and is left out of the decomposition (eigenvalues
under :data:`EIGEN_FLOOR` are treated as 0: a redundant combination explains
nothing of its own).

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> x = rng.normal(size=(500, 2))
>>> y = 2 * x[:, 0] + x[:, 1] + rng.normal(size=500)
>>> w = relative_weights(np.cov(np.column_stack([x, y]), rowvar=False))
>>> [round(float(v), 2) for v in w], round(float(w.sum()), 2)
([0.63, 0.18], 0.8)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

EIGEN_FLOOR = 1e-10
"""Eigenvalues of the predictors' correlation matrix below this count as zero."""
VARIANCE_FLOOR = 1e-12


def relative_weights(cov: FloatArray) -> FloatArray:
    """Raw relative weights of the first ``k`` variables for the last, from a (k+1)^2 covariance."""
    weights: FloatArray = relative_weights_stack(cov[np.newaxis])[0]
    return weights


def relative_weights_stack(covs: FloatArray, outcomes: int = 1) -> FloatArray:
    """:func:`relative_weights` of a stack of covariance matrices.

    The first ``k`` variables are the predictors and the last ``outcomes`` the
    outcomes, each decomposed on its own (the predictors' eigen-decomposition is
    shared): shape (B, k + outcomes, k + outcomes) -> (B, k), or (B, outcomes, k)
    when ``outcomes`` > 1.
    """
    k = covs.shape[-1] - outcomes
    sd = np.sqrt(np.clip(np.diagonal(covs, axis1=-2, axis2=-1), 0.0, None))
    alive = sd > np.sqrt(VARIANCE_FLOOR)  # (B, k + outcomes)
    scale = np.where(alive, sd, 1.0)
    corr = covs / scale[:, :, np.newaxis] / scale[:, np.newaxis, :]
    keep = alive[:, :k, np.newaxis] & alive[:, np.newaxis, :k]
    rxx = np.where(keep, corr[:, :k, :k], 0.0)
    eye = np.eye(k, dtype=bool)[np.newaxis]
    rxx = np.where(eye, 1.0, rxx)  # a dead predictor: its own unit axis, uncorrelated
    # (B, outcomes, k): each outcome's correlations with the live predictors
    live = alive[:, np.newaxis, :k] & alive[:, k:, np.newaxis]
    rxy = np.where(live, np.swapaxes(corr[:, :k, k:], 1, 2), 0.0)
    values, vectors = np.linalg.eigh(rxx)
    values = np.where(values > EIGEN_FLOOR, values, 0.0)
    root = np.sqrt(values)
    inv_root = np.where(values > 0.0, 1.0 / np.where(root > 0.0, root, 1.0), 0.0)
    half = (vectors * root[:, np.newaxis, :]) @ np.swapaxes(vectors, -1, -2)
    inv_half = (vectors * inv_root[:, np.newaxis, :]) @ np.swapaxes(vectors, -1, -2)
    beta = np.einsum("bjk,bok->boj", inv_half, rxy)
    weights: FloatArray = np.einsum("bjk,bok->boj", half**2, beta**2)
    weights = np.where(alive[:, np.newaxis, :k], weights, 0.0)
    return weights[:, 0] if outcomes == 1 else weights


def sample_covariances(sample: FloatArray) -> FloatArray:
    """Covariance matrices of a stack of samples: (B, m, v) -> (B, v, v), m - 1 denominator."""
    centred = sample - sample.mean(axis=1, keepdims=True)
    m = sample.shape[1]
    covs: FloatArray = np.matmul(np.swapaxes(centred, 1, 2), centred) / max(1, m - 1)
    return covs
