"""Baselines run beside the red-flag model on the same rows, in the same process.

- ``tfidf_logreg``: TF-IDF word and character n-grams + one logistic regression per label, trained on the
  same training data as the model (loss masked the same way: a source only teaches the labels it annotates),
  thresholds chosen on the same validation split by the model's rule: F1-best with every source weighted
  equally (``source_weights``), not pooled rows.
- ``profanity_check``: the PyPI package alt-profanity-check (a linear SVM on a profanity corpus); it scores
  offensive language as a whole, so it covers the ``abusive`` group and the ``profanity`` label only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from assistant.labels import GROUPS, LABELS
from assistant.redflags.data import Example
from assistant.redflags.metrics import best_threshold, source_weights
from assistant.redflags.training import asr_style

# name -> (scores, decisions) over the rows
Scored = dict[str, tuple[np.ndarray, np.ndarray]]


class TfidfLogReg:
    """One-vs-rest logistic regression on TF-IDF features; fit with :meth:`fit`."""

    name = "tfidf_logreg"

    def __init__(self, *, seed: int = 13) -> None:
        self.seed = seed
        self.features = FeatureUnion(
            [
                (
                    "word",
                    TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=200_000),
                ),
                (
                    "char",
                    TfidfVectorizer(
                        analyzer="char_wb",
                        ngram_range=(2, 5),
                        min_df=3,
                        sublinear_tf=True,
                        max_features=200_000,
                    ),
                ),
            ]
        )
        self.models: dict[str, LogisticRegression] = {}
        self.thresholds: dict[str, float] = {}

    def fit(self, train: Sequence[Example], valid: Sequence[Example]) -> TfidfLogReg:
        texts = [asr_style(e.text) for e in train]  # same casing as call transcripts
        x = self.features.fit_transform(texts)
        xv = self.features.transform([asr_style(e.text) for e in valid]) if valid else None
        for label in LABELS:
            rows = np.array([label in e.known or label in e.labels for e in train])
            y = np.array([label in e.labels for e in train])
            if rows.sum() == 0 or y[rows].sum() == 0 or y[rows].all():
                continue
            model = LogisticRegression(max_iter=2000, C=4.0, class_weight="balanced", random_state=self.seed)
            model.fit(x[rows], y[rows])
            self.models[label] = model
            self.thresholds[label] = 0.5
            if xv is not None:
                vrows = np.array([label in e.known or label in e.labels for e in valid])
                if vrows.any():
                    yv = np.array([label in e.labels for e in valid])[vrows]
                    weights = source_weights([e.source for e, r in zip(valid, vrows, strict=True) if r])
                    self.thresholds[label] = best_threshold(
                        yv, model.predict_proba(xv[vrows])[:, 1], weights=weights
                    )
        return self

    def score(self, texts: Sequence[str], contexts: Sequence[Sequence[str]]) -> Scored:
        # The baseline reads the utterance alone, as it was trained: a bag of n-grams has no use for turns.
        x = self.features.transform([asr_style(t) for t in texts])
        out: Scored = {}
        for label, model in self.models.items():
            p = model.predict_proba(x)[:, 1]
            out[label] = (p, p >= self.thresholds[label])
        for group, members in GROUPS.items():
            have = [m for m in members if m in out]
            if len(have) == len(members):
                out[group] = (
                    np.max([out[m][0] for m in have], axis=0),
                    np.any([out[m][1] for m in have], axis=0),
                )
        return out


class ProfanityCheck:
    """alt-profanity-check's probability of offensive language, at its default 0.5 cut-off."""

    name = "profanity_check"

    def score(self, texts: Sequence[str], contexts: Sequence[Sequence[str]]) -> Scored:
        from profanity_check import predict_prob

        p = np.asarray(predict_prob(list(texts)), dtype=float) if texts else np.zeros(0)
        return {"abusive": (p, p >= 0.5), "profanity": (p, p >= 0.5)}


class KeywordRules:
    """The keyword lists of the model-free stand-in (``ASSISTANT_USE_FAKE_MODELS=1``): a label is decided when
    one of its keywords occurs. The simplest peer a user could write; it decides every label and group."""

    name = "keyword_rules"

    def score(self, texts: Sequence[str], contexts: Sequence[Sequence[str]]) -> Scored:
        from assistant.testing import KeywordAnalyzer
        from assistant.types import Utterance

        results = KeywordAnalyzer().predict([Utterance(t) for t in texts])
        out: Scored = {}
        for name in (*LABELS, *GROUPS):
            if name in LABELS:
                p = np.array([r.labels[name].probability for r in results], dtype=float)
                d = np.array([r.labels[name].flagged for r in results], dtype=bool)
            else:
                p = np.array([r.groups[name] for r in results], dtype=float)
                d = np.array([any(r.labels[m].flagged for m in GROUPS[name]) for r in results], dtype=bool)
            out[name] = (p.reshape(len(texts)), d.reshape(len(texts)))
        return out
