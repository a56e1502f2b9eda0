"""RFC 9162 Merkle tree: proofs built from stored complete-subtree hashes.

The log stores the hash of every *complete* subtree: node ``(level, i)`` covers
leaves ``[i * 2**level, (i + 1) * 2**level)``. Any subtree hash a proof needs is
either one stored node or a fold of O(log n) of them, so proofs never read
leaves. ``needed_*`` list the stored nodes a proof touches, so a store can fetch
them in one query; the proof functions then read them through ``node``.

Verification lives in :mod:`copyscope.ledger.verifier` (the standalone file
shipped in evidence packages); hashing is shared from there.
"""
from __future__ import annotations

from typing import Callable

from copyscope.ledger.verifier import leaf_hash, node_hash

__all__ = ["leaf_hash", "node_hash", "largest_pow2_below", "subtree_hash", "inclusion_proof",
           "consistency_proof", "root", "frontier", "needed_subtree", "needed_inclusion",
           "needed_consistency", "root_of_leaves"]

Node = Callable[[int, int], bytes]       # (level, index) -> stored hash of a complete subtree


def largest_pow2_below(n: int) -> int:
    """The largest power of two strictly less than ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def needed_subtree(start: int, end: int, out: list[tuple[int, int]]) -> None:
    """Stored nodes that make up MTH(D[start:end]) (start aligned as RFC splits are)."""
    n = end - start
    if n & (n - 1) == 0:
        level = n.bit_length() - 1
        out.append((level, start >> level))
        return
    k = largest_pow2_below(n)
    needed_subtree(start, start + k, out)
    needed_subtree(start + k, end, out)


def subtree_hash(node: Node, start: int, end: int) -> bytes:
    """MTH(D[start:end]) from stored nodes."""
    n = end - start
    if n & (n - 1) == 0:
        level = n.bit_length() - 1
        return node(level, start >> level)
    k = largest_pow2_below(n)
    return node_hash(subtree_hash(node, start, start + k), subtree_hash(node, start + k, end))


def root(node: Node, size: int) -> bytes:
    if size == 0:
        import hashlib  # noqa: PLC0415
        return hashlib.sha256(b"").digest()
    return subtree_hash(node, 0, size)


def frontier(size: int) -> list[tuple[int, int]]:
    """The complete subtrees whose concatenation is a tree of ``size`` leaves, left to right."""
    out, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, start >> level))
            start += 1 << level
    return out


def _path(index: int, start: int, end: int, sub: Callable[[int, int], object], out: list) -> None:
    """RFC 9162 PATH(m, D[start:end]), bottom-up, as calls to ``sub``."""
    n = end - start
    if n == 1:
        return
    k = largest_pow2_below(n)
    if index - start < k:
        _path(index, start, start + k, sub, out)
        out.append(sub(start + k, end))
    else:
        _path(index, start + k, end, sub, out)
        out.append(sub(start, start + k))


def inclusion_proof(node: Node, index: int, size: int) -> list[bytes]:
    if not 0 <= index < size:
        raise ValueError(f"index {index} outside tree of size {size}")
    out: list[bytes] = []
    _path(index, 0, size, lambda a, b: subtree_hash(node, a, b), out)
    return out


def needed_inclusion(index: int, size: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    _path(index, 0, size, lambda a, b: (a, b), spans)
    out: list[tuple[int, int]] = []
    for a, b in spans:
        needed_subtree(a, b, out)
    return out


def _subproof(m: int, start: int, end: int, complete: bool, sub, out: list) -> None:  # noqa: ANN001
    """RFC 9162 SUBPROOF(m, D[start:end], b)."""
    n = end - start
    if m == n:
        if not complete:
            out.append(sub(start, end))
        return
    k = largest_pow2_below(n)
    if m <= k:
        _subproof(m, start, start + k, complete, sub, out)
        out.append(sub(start + k, end))
    else:
        _subproof(m - k, start + k, end, False, sub, out)
        out.append(sub(start, start + k))


def consistency_proof(node: Node, size1: int, size2: int) -> list[bytes]:
    if not 0 < size1 <= size2:
        raise ValueError(f"cannot prove consistency {size1} -> {size2}")
    out: list[bytes] = []
    if size1 < size2:
        _subproof(size1, 0, size2, True, lambda a, b: subtree_hash(node, a, b), out)
    return out


def needed_consistency(size1: int, size2: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    if size1 < size2:
        _subproof(size1, 0, size2, True, lambda a, b: (a, b), spans)
    out: list[tuple[int, int]] = []
    for a, b in spans:
        needed_subtree(a, b, out)
    return out


def root_of_leaves(leaves: list[bytes]) -> bytes:
    """MTH over raw leaf data (reference implementation, for tests and small trees)."""
    import hashlib  # noqa: PLC0415
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = largest_pow2_below(len(leaves))
    return node_hash(root_of_leaves(leaves[:k]), root_of_leaves(leaves[k:]))
