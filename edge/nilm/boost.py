"""Gradient-boosted decision trees in NumPy alone: the hub may not carry scikit-learn or LightGBM.

Histogram boosting as LightGBM does it, kept small: every feature cut into at most ``bins``
quantile bins, trees of fixed depth grown level by level (one ``bincount`` a level for all
features and nodes at once), logistic loss for on/off. A tree is three small arrays, so a
model of five appliances stays far under the 1 MB the hub allows, and prediction is a few
gathers per tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass
class Trees:
    edges: list[np.ndarray]  # per feature: the cut points between its bins
    feature: np.ndarray  # (trees, 2**depth - 1) the feature each inner node asks about (heap order)
    cut: np.ndarray  # (trees, 2**depth - 1) go right when the feature's bin is above this
    leaf: np.ndarray  # (trees, 2**depth) the score a leaf adds
    base: float  # the starting score (log-odds of the training on-share)

    def to_json(self) -> dict:
        return {"edges": [np.round(e, 3).tolist() for e in self.edges], "feature": self.feature.tolist(),
                "cut": self.cut.tolist(), "leaf": np.round(self.leaf, 5).tolist(), "base": round(self.base, 6)}

    @classmethod
    def from_json(cls, doc: dict) -> Trees:
        return cls([np.asarray(e, dtype=np.float64) for e in doc["edges"]], np.asarray(doc["feature"], dtype=np.int64),
                   np.asarray(doc["cut"], dtype=np.int64), np.asarray(doc["leaf"], dtype=np.float64),
                   float(doc["base"]))

    def check(self, columns: int) -> None:
        """``ValueError`` saying what is wrong if these trees cannot score a matrix of ``columns`` features (they
        read the first ``len(edges)`` of them): a model
        file edited by hand, or damaged, is refused as it is read rather than failing the hub's first pass."""
        if len(self.edges) > columns:  # fewer is a model that reads only the first (a small one, in tests)
            raise ValueError(f"cut points for {len(self.edges)} features, where the hub computes {columns}")
        for j, e in enumerate(self.edges):
            if e.ndim != 1 or len(e) > 255 or not np.all(np.isfinite(e)) or np.any(np.diff(e) < 0):
                raise ValueError(f"feature {j}'s cut points are not at most 255 finite numbers in order")
        if self.feature.ndim != 2 or self.feature.shape != self.cut.shape or self.leaf.ndim != 2 \
                or self.leaf.shape != (self.feature.shape[0], self.feature.shape[1] + 1) \
                or self.leaf.shape[1] < 2 or self.leaf.shape[1] & (self.leaf.shape[1] - 1):
            raise ValueError(f"trees of shapes feature {self.feature.shape}, cut {self.cut.shape}, leaf "
                             f"{self.leaf.shape}: not (trees, 2**depth - 1) nodes and (trees, 2**depth) leaves")
        if self.feature.size and (self.feature.min() < 0 or self.feature.max() >= len(self.edges)):
            raise ValueError(f"a node asks about a feature outside 0-{len(self.edges) - 1}")
        if self.cut.size and (self.cut.min() < 0 or self.cut.max() > 255):
            raise ValueError("a node cuts at a bin outside 0-255")
        if not (np.all(np.isfinite(self.leaf)) and np.isfinite(self.base)):
            raise ValueError("a leaf or the base score is not a finite number")

    def leaves(self, x: np.ndarray) -> Iterator[np.ndarray]:
        """Per tree, the leaf each row of the raw feature matrix ``x`` lands in: one tree at a time, so a week
        of rows never holds every tree's indices at once."""
        xb = binned(x, self.edges)
        rows = np.arange(len(x))
        depth = int(np.log2(self.leaf.shape[1]))
        for feature, cut in zip(self.feature, self.cut, strict=True):
            node = np.zeros(len(x), dtype=np.int64)
            for _ in range(depth):
                node = 2 * node + 1 + (xb[rows, feature[node]] > cut[node])
            yield node - (2 ** depth - 1)

    def score(self, x: np.ndarray) -> np.ndarray:
        """Log-odds for each row of the raw feature matrix ``x``."""
        total = np.full(len(x), self.base)
        for leaf, landed in zip(self.leaf, self.leaves(x), strict=True):
            total += leaf[landed]
        return total

    def probability(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.score(x)))


def binned(x: np.ndarray, edges: list[np.ndarray]) -> np.ndarray:
    """Each value's bin: a byte (at most 256 bins), an eighth of the memory of the rows as int64."""
    out = np.empty(x.shape, dtype=np.uint8)
    for j, e in enumerate(edges):
        out[:, j] = np.searchsorted(e, x[:, j], side="right")
    return out


def fit(x: np.ndarray, y: np.ndarray, trees: int = 80, depth: int = 4, rate: float = 0.15, bins: int = 32,
        min_leaf: int = 40, l2: float = 1.0, subsample: float = 0.5, seed: int = 0, loss: str = "logistic",
        start: Trees | None = None) -> Trees:
    """Boost ``trees`` trees of ``depth`` on features ``x`` (rows, features) for labels ``y``: 0/1 with the
    logistic loss (``score`` is then log-odds), any number with the squared loss (``score`` is the value).

    With ``start``, boosting goes on from its trees (their bins, their base, their score on ``x``) and the
    result holds them and the new ones: how a shipped model learns one more home without forgetting the
    homes it learned from."""
    n, nf = x.shape
    if start is not None:
        edges, base, depth = start.edges, start.base, int(np.log2(start.leaf.shape[1]))
        bins = max(len(e) for e in edges) + 1
        f = start.score(x)
    else:
        qs = np.linspace(0, 1, bins + 1)[1:-1]
        edges = [np.unique(np.quantile(x[:, j], qs)) for j in range(nf)]
        if loss == "logistic":
            share = float(np.clip(np.mean(y), 1e-4, 1 - 1e-4))
            base = float(np.log(share / (1 - share)))
        else:
            base = float(np.mean(y))
        f = np.full(n, base)
    xb = binned(x, edges)
    rng = np.random.default_rng(seed)
    inner = 2 ** depth - 1
    feats = np.zeros((trees, inner), dtype=np.int64)
    cuts = np.full((trees, inner), bins, dtype=np.int64)  # bins: nothing goes right (no split)
    leaves = np.zeros((trees, 2 ** depth))
    rows_all = np.arange(n)
    for t in range(trees):
        if loss == "logistic":
            p = 1.0 / (1.0 + np.exp(-f))
            g, h = p - y, np.maximum(p * (1 - p), 1e-6)
        else:
            g, h = f - y, np.ones(n)
        sample = np.flatnonzero(rng.random(n) < subsample)
        xb_sample, g_sample, h_sample = np.ascontiguousarray(xb[sample].T), g[sample], h[sample]  # by feature
        node = np.zeros(n, dtype=np.int64)  # heap index, all rows
        for level in range(depth):
            first, width = 2 ** level - 1, 2 ** level
            local = (node[sample] - first) * bins
            hist_g, hist_h, hist_n = (np.empty((width, nf, bins)) for _ in range(3))
            for j in range(nf):  # a feature at a time: the rows' keys for all features at once were half the peak
                key = local + xb_sample[j]
                hist_g[:, j] = np.bincount(key, g_sample, width * bins).reshape(width, bins)
                hist_h[:, j] = np.bincount(key, h_sample, width * bins).reshape(width, bins)
                hist_n[:, j] = np.bincount(key, None, width * bins).reshape(width, bins)
            gl, hl, nl = hist_g.cumsum(2), hist_h.cumsum(2), hist_n.cumsum(2)
            gt, ht, nt = gl[..., -1:], hl[..., -1:], nl[..., -1:]
            gain = gl ** 2 / (hl + l2) + (gt - gl) ** 2 / (ht - hl + l2) - gt ** 2 / (ht + l2)
            gain[(nl < min_leaf) | (nt - nl < min_leaf)] = -np.inf
            flat = gain.reshape(width, -1)
            best = flat.argmax(1)
            ok = flat[np.arange(width), best] > 1e-9
            feats[t, first:first + width] = np.where(ok, best // bins, 0)
            cuts[t, first:first + width] = np.where(ok, best % bins, bins)
            node = 2 * node + 1 + (xb[rows_all, feats[t, node]] > cuts[t, node])
        leaf = node - inner
        sum_g = np.bincount(leaf[sample], g[sample], 2 ** depth)
        sum_h = np.bincount(leaf[sample], h[sample], 2 ** depth)
        leaves[t] = -rate * sum_g / (sum_h + l2)
        f += leaves[t][leaf]
    if start is not None:  # a cut of ``bins`` sends nothing right, whatever the start's bins were
        feats, leaves = np.vstack([start.feature, feats]), np.vstack([start.leaf, leaves])
        cuts = np.vstack([np.where(start.cut >= bins, bins, start.cut), cuts])
    return Trees(edges, feats, cuts, leaves, base)
