"""kNN and logistic-regression baselines (scikit-learn) on cached pooled features."""
from __future__ import annotations

import logging
from typing import Any, Dict, Mapping, Sequence, Tuple

import numpy as np
import torch

from probes.classification.cache import FeatureStore
from probes.classification.config import CacheSpec
from probes.classification.datasets import ImageSet
from probes.classification.heads import linear_input
from probes.classification.metrics import Top1Table

log = logging.getLogger(__name__)


def pooled_matrix(store: FeatureStore, chunk: int = 4096) -> Tuple[np.ndarray, np.ndarray]:
    """(rows, pooled features) of the decoded images of a store, as float32."""
    rows = store.valid_rows()
    if store.pooled is not None:
        return rows, np.asarray(store.pooled[rows], dtype=np.float32)
    parts = [linear_input(store.read(rows[i:i + chunk], False, True, torch.device("cpu"))["tokens"],
                          store.num_prefix_tokens).numpy() for i in range(0, len(rows), chunk)]
    return rows, np.concatenate(parts).astype(np.float32)


def fit_baselines(train_x: np.ndarray, train_y: np.ndarray, cache: CacheSpec) -> Dict[str, Any]:
    """Fitted scikit-learn classifiers: cosine kNN (distance-weighted) and multinomial logreg."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    models: Dict[str, Any] = {}
    if cache.knn:
        k = min(int(cache.knn_k), len(train_x))
        models["knn"] = KNeighborsClassifier(n_neighbors=k, metric="cosine", weights="distance",
                                             algorithm="brute").fit(train_x, train_y)
    if cache.logreg:
        models["logreg"] = make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=int(cache.logreg_max_iter))).fit(train_x, train_y)
    return models


def class_scores(model: Any, x: np.ndarray, num_classes: int) -> torch.Tensor:
    """1000-wide scores (classes unseen in training get -inf) so every test-set rule applies."""
    proba = model.predict_proba(x)
    full = np.full((len(x), num_classes), -np.inf, dtype=np.float32)
    full[:, model.classes_] = np.log(np.clip(proba, 1e-12, None))
    return torch.from_numpy(full)


def score_baselines(models: Mapping[str, Any], store: FeatureStore, image_set: ImageSet,
                    scores: Sequence[str], num_classes: int) -> Top1Table:
    """Top-1 of every baseline on one cached split (counts kept under key (name, False))."""
    rows, x = pooled_matrix(store)
    table = Top1Table()
    table.ensure([(name, False) for name in models], scores)
    indices = torch.as_tensor(rows)
    logits = {(name, False): class_scores(m, x, num_classes) for name, m in models.items()}
    table.update(logits, indices, image_set, scores)
    return table


def baseline_tables(cache: CacheSpec, num_classes: int, train: ImageSet, heldout: ImageSet,
                    tests: Sequence[ImageSet], stores: Mapping[str, FeatureStore]
                    ) -> Tuple[list, Top1Table, list]:
    """(baseline names, held-out table, [(test set, table)]) of the baselines fitted on cached train features."""
    rows, x = pooled_matrix(stores["train"])
    models = fit_baselines(x, [train.targets[i] for i in rows], cache)
    held = score_baselines(models, stores["heldout"], heldout, ("heldout",), num_classes)
    return list(models), held, [(s, score_baselines(models, stores[s.name], s, s.scores, num_classes)) for s in tests]
