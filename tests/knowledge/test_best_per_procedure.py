"""The per-procedure aggregation of passage scores: one argmax per row, against the plain loop it replaced."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.knowledge.index import best_per_group, members_matrix


def _reference(scores: np.ndarray, proc_of: np.ndarray, n_procedures: int, fill: float):
    """The loop retrieval ran before: passages best-first (stable), the first per procedure wins."""
    best = np.full(n_procedures, fill, dtype=np.float32)
    where = np.full(n_procedures, -1, dtype=np.int64)
    for i in np.argsort(-scores, kind="stable"):
        p = proc_of[i]
        if where[p] < 0 and scores[i] != -np.inf:
            best[p], where[p] = scores[i], i
    return best, where


@st.composite
def _case(draw):
    n_procedures = draw(st.integers(1, 6))
    n = draw(st.integers(0, 25))
    proc_of = np.array(
        draw(st.lists(st.integers(0, n_procedures - 1), min_size=n, max_size=n)), dtype=np.int64
    )
    # Few distinct values, so that ties are common; -inf marks a passage that is not a candidate.
    values = st.sampled_from([-np.inf, -1.0, 0.0, 0.25, 0.5, 2.0])
    scores = np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype=np.float64)
    return proc_of, n_procedures, scores


@settings(max_examples=300, deadline=None)
@given(_case(), st.sampled_from([-1.0, 0.0]))
def test_matches_the_loop_it_replaced(case, fill: float) -> None:
    proc_of, n_procedures, scores = case
    best, where = best_per_group(scores, members_matrix(proc_of, n_procedures), fill=fill)
    ref_best, ref_where = _reference(scores, proc_of, n_procedures, fill)
    np.testing.assert_array_equal(where, ref_where)
    np.testing.assert_array_equal(best, ref_best)
    assert best.dtype == np.float32


def test_members_pad_procedures_without_passages() -> None:
    members = members_matrix(np.array([2, 0, 2], dtype=np.int64), 4)
    assert members.tolist() == [[1, 3], [3, 3], [0, 2], [3, 3]]
    best, where = best_per_group(np.array([0.1, 0.9, 0.3]), members, fill=-1.0)
    assert where.tolist() == [1, -1, 2, -1]
    assert best.tolist() == pytest.approx([0.9, -1.0, 0.3, -1.0])
