"""Shared-prefix planning: which token sequences can reuse one forward pass of a common prefix.

Contrastive data repeats long prefixes: every prompt starts with the same chat header, and
GRACE-style data answers many questions under one instruction, so all prompts of that
instruction share ``header + instruction``. Running such a prefix once and reusing its
key/value cache for every member saves ``(members - 1) * prefix_length`` token-passes.
"""

from __future__ import annotations

import numpy as np

MIN_SHARED_PREFIX = 8  # tokens; shorter shared prefixes are not worth an extra forward call
_MAX_GROUP_SPAN = 2048  # members considered per group, bounds planning time to O(n · span)


def _common_prefix_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for k in range(n):
        if a[k] != b[k]:
            return k
    return n


def shared_prefix_groups(sequences: list[list[int]], min_prefix: int = MIN_SHARED_PREFIX) -> list[tuple[int, np.ndarray]]:
    """Partition sequences into groups that share a token prefix, saving the most tokens.

    Sequences are sorted by their tokens, so sequences with a common prefix are contiguous;
    a dynamic programme then cuts the sorted order into groups maximising the saved
    token-passes ``Σ (members − 1) × prefix``. A group's prefix is its members' longest common
    prefix, capped so that every member keeps at least one token after it (the last token is
    read, so it must be computed in the member's own pass).

    Parameters
    ----------
    sequences : token-id lists, length ``n``, none empty.
    min_prefix : shortest prefix (tokens) worth sharing.

    Returns
    -------
    list of ``(prefix_length, member_indices)``; every index in ``range(n)`` appears in exactly
    one group; ``prefix_length`` is 0 for sequences that share nothing worth sharing (these
    come as one group).
    """
    n = len(sequences)
    order = sorted(range(n), key=lambda i: sequences[i])
    adjacent = np.array([_common_prefix_length(sequences[order[k]], sequences[order[k + 1]]) for k in range(n - 1)],
                        dtype=np.int64)
    lengths = np.array([len(sequences[i]) for i in order], dtype=np.int64)
    best = np.zeros(n + 1, dtype=np.int64)  # best[j]: most tokens saved on the first j sorted sequences
    cut = np.zeros(n + 1, dtype=np.int64)  # start of the last group in that optimum
    prefix_of = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):  # group = sorted[i:j]
        best[j], cut[j], prefix_of[j] = best[j - 1], j - 1, 0
        span = min(j - 1, _MAX_GROUP_SPAN)
        if span == 0:
            continue
        # prefix of sorted[i:j] for i = j-2, j-3, ...: running minima walking left
        shared = np.minimum.accumulate(adjacent[j - 1 - span:j - 1][::-1])
        shortest = np.minimum.accumulate(lengths[j - 1 - span:j - 1][::-1])
        prefix = np.minimum(shared, np.minimum(shortest, lengths[j - 1]) - 1)
        prefix = np.where(prefix >= min_prefix, prefix, 0)
        members = np.arange(2, span + 2)
        starts = j - members
        totals = best[starts] + (members - 1) * prefix
        k = int(np.argmax(totals))
        if totals[k] > best[j]:
            best[j], cut[j], prefix_of[j] = totals[k], starts[k], prefix[k]
    groups, alone = [], []
    j = n
    while j > 0:
        i = int(cut[j])
        if prefix_of[j] > 0:
            groups.append((int(prefix_of[j]), np.array(order[i:j])))
        else:
            alone.extend(order[i:j])
        j = i
    groups.reverse()
    if alone:
        groups.append((0, np.array(sorted(alone))))
    return groups
