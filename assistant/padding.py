"""Split a batch of token sequences into groups that waste the least compute on padding.

A padded batch costs every row the length of its longest row, and every forward pass costs a fixed overhead
(weight reads, op dispatch). A live batch mixes calls, so lengths vary (a "yes" beside a long complaint);
one group wastes tokens on padding, one group per row pays the overhead every time. This finds the split
in between that costs least.

    >>> length_groups([5, 30, 6, 31, 7], overhead_tokens=8)
    [[0, 2, 4], [1, 3]]
    >>> length_groups([5, 30, 6], overhead_tokens=100)
    [[0, 2, 1]]
"""

from __future__ import annotations

from collections.abc import Sequence

# Measured for both MiniLM encoders (bf16, one thread, this project's 2-core Xeon): a forward pass costs
# about 1.5-2 ms on top of ~45 us per padded token, i.e. the overhead of roughly 32-40 tokens.
DEFAULT_OVERHEAD_TOKENS = 32
DEFAULT_MAX_SIZE = 32


def length_groups(
    lengths: Sequence[int],
    *,
    overhead_tokens: int = DEFAULT_OVERHEAD_TOKENS,
    max_size: int = DEFAULT_MAX_SIZE,
) -> list[list[int]]:
    """Indices of ``lengths`` in groups (shortest first), minimising the sum over groups of
    ``overhead_tokens + size * longest``, with at most ``max_size`` rows per group."""
    if max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n = len(order)
    # best[j]: least cost of the first j sorted rows; cut[j]: where the last group of that solution starts.
    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest = lengths[order[j - 1]]
        for i in range(max(0, j - max_size), j):
            cost = best[i] + overhead_tokens + (j - i) * longest
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups: list[list[int]] = []
    j = n
    while j > 0:
        groups.append(order[cut[j] : j])
        j = cut[j]
    return groups[::-1]


def group_layout(
    groups: Sequence[Sequence[int]], lengths: Sequence[int]
) -> tuple[list[int], list[int], list[int]]:
    """``groups`` flattened for a loop that runs outside Python (a scripted model's group loop): the row
    order, where each group starts and ends in it, and each group's width (its longest row).

    >>> group_layout([[0, 2], [1]], [5, 30, 6])
    ([0, 2, 1], [0, 2, 3], [6, 30])
    """
    order = [i for g in groups for i in g]
    bounds = [0]
    for g in groups:
        bounds.append(bounds[-1] + len(g))
    return order, bounds, [max(lengths[i] for i in g) for g in groups]
