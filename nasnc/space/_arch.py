"""The NAS-Bench-201 cell search space.

A cell is a DAG over 4 nodes; node 0 is the cell input, node 3 its output, and
every pair ``i < j`` is joined by one edge carrying one of five operations. The
six edges are kept in the benchmark's order::

    (1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2)

and the benchmark writes a cell as ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``
(node 1 | node 2 | node 3, each token ``op~input``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

from nasnc._errors import ArchError

__all__ = [
    "EDGES",
    "NUM_ARCHS",
    "NUM_EDGES",
    "NUM_UNIQUE",
    "OPS",
    "Arch",
    "all_archs",
    "canonical_classes",
    "sample_archs",
]

#: The five candidate operations, in the benchmark's order (op index = position).
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: The six edges as ``(target, source)`` node pairs, in the benchmark's order.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_EDGES = len(EDGES)
#: Size of the space: 5 ** 6.
NUM_ARCHS = len(OPS) ** NUM_EDGES
#: Number of functionally distinct cells (isomorphism classes), the authors' count.
NUM_UNIQUE = 6466

_ZERO = "#"


@dataclass(frozen=True, order=True)
class Arch:
    """One NAS-Bench-201 cell: the operation on each of the six edges.

    Immutable and hashable. ``str(arch)`` gives the benchmark's string, which
    :meth:`from_str` parses back.

    >>> a = Arch.from_str(
    ...     "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"
    ... )
    >>> a.ops[0], a.op_indices
    ('nor_conv_3x3', (3, 0, 1, 4, 0, 2))
    """

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        ops = tuple(self.ops)
        if len(ops) != NUM_EDGES:
            raise ArchError(f"an Arch needs {NUM_EDGES} operations, got {len(ops)}: {ops!r}")
        for op in ops:
            if op not in OPS:
                raise ArchError(f"unknown operation {op!r}; known: {', '.join(OPS)}")
        object.__setattr__(self, "ops", ops)

    # ------------------------------------------------------------------ parsing
    @classmethod
    def from_str(cls, text: str) -> Arch:
        """Parse the benchmark's string form; raise :class:`ArchError` naming the bad token."""
        if not isinstance(text, str):
            raise ArchError(f"an architecture string is expected, got {type(text).__name__}")
        text = text.strip()
        if not text:
            raise ArchError("architecture string is empty")
        nodes = text.split("+")
        if len(nodes) != 3:
            raise ArchError(f"expected 3 nodes separated by '+', got {len(nodes)} in {text!r}")
        ops: list[str] = []
        for node, group in enumerate(nodes, start=1):
            if not group:
                raise ArchError(f"node {node} is empty (extra '+') in {text!r}")
            if len(group) < 2 or not group.startswith("|") or not group.endswith("|"):
                raise ArchError(
                    f"node {node} must be written '|op~i|...|', got {group!r} in {text!r}"
                )
            tokens = group[1:-1].split("|")
            for token in tokens:
                if not token:
                    raise ArchError(f"empty token (extra '|') in node {node}: {group!r}")
            if len(tokens) != node:
                raise ArchError(
                    f"node {node} needs {node} input token(s), got {len(tokens)}: {group!r}"
                )
            for source, token in enumerate(tokens):
                op, sep, index = token.partition("~")
                if not sep:
                    raise ArchError(f"token {token!r} of node {node} lacks '~input'")
                if op not in OPS:
                    raise ArchError(
                        f"unknown operation {op!r} in token {token!r} of node {node}; "
                        f"known: {', '.join(OPS)}"
                    )
                if index != str(source):
                    raise ArchError(
                        f"token {token!r} of node {node} must read input {source}, "
                        f"got input {index!r}"
                    )
                ops.append(op)
        return cls(tuple(ops))

    @classmethod
    def from_indices(cls, indices: Sequence[int]) -> Arch:
        """Build from six op indices into :data:`OPS` (the benchmark's digit code)."""
        idx = tuple(int(i) for i in indices)
        if len(idx) != NUM_EDGES:
            raise ArchError(f"{NUM_EDGES} op indices are needed, got {len(idx)}: {idx!r}")
        bad = [i for i in idx if not 0 <= i < len(OPS)]
        if bad:
            raise ArchError(f"op index {bad[0]} is out of range 0..{len(OPS) - 1} in {idx!r}")
        return cls(tuple(OPS[i] for i in idx))

    @classmethod
    def parse(cls, value: str | Arch) -> Arch:
        """Accept an :class:`Arch`, a benchmark string or a 6-digit op code (``"310402"``)."""
        if isinstance(value, Arch):
            return value
        text = str(value).strip()
        if len(text) == NUM_EDGES and text.isdigit():
            return cls.from_indices([int(c) for c in text])
        return cls.from_str(text)

    def __str__(self) -> str:
        parts = []
        for node in (1, 2, 3):
            tokens = [f"{self.op(node, src)}~{src}" for src in range(node)]
            parts.append("|" + "|".join(tokens) + "|")
        return "+".join(parts)

    # --------------------------------------------------------------- accessors
    @property
    def op_indices(self) -> tuple[int, ...]:
        """The six op indices (positions in :data:`OPS`)."""
        return tuple(OPS.index(op) for op in self.ops)

    @property
    def code(self) -> str:
        """The six op indices as a digit string, e.g. ``"310402"``."""
        return "".join(str(i) for i in self.op_indices)

    @property
    def is_zero(self) -> bool:
        """True when no path of non-``none`` edges joins the input to the output."""
        reach = [True, False, False, False]
        for target, source in EDGES:  # sources precede targets in this order
            if reach[source] and self.op(target, source) != "none":
                reach[target] = True
        return not reach[3]

    def __repr__(self) -> str:
        return f"Arch({str(self)!r})"

    def op(self, target: int, source: int) -> str:
        """The operation on edge ``source -> target``."""
        return self.ops[EDGES.index((target, source))]

    # ------------------------------------------------------------ canonical form
    def canonical(self) -> str:
        """A string shared by the cells the benchmark authors count as isomorphic.

        The output node is expanded into an expression of the input ``0``,
        following NAS-Bench-201's ``to_unique_str(consider_zero=True)``: an edge
        carrying ``none``, or reading a node that is exactly zero, contributes
        the zero term ``#``; ``skip_connect`` passes its input's expression
        through unchanged; any other op wraps it as ``(expr)@op``; the terms of
        every sum are sorted. This rule gives the authors' 6,466 classes over
        the 15,625 cells. It is what the benchmark calls "unique", not strict
        functional identity: dropping zero terms entirely and flattening skip
        sums would merge further (5,390 and 4,930 classes respectively).
        """
        return _canonical(self.ops)


@cache
def _canonical(ops: tuple[str, ...]) -> str:
    nodes = ["0"]  # node 0: the cell input
    for target in (1, 2, 3):
        terms = []
        for source in range(target):
            op = ops[EDGES.index((target, source))]
            inp = nodes[source]
            if op == "none" or inp == _ZERO:
                terms.append(_ZERO)
            elif op == "skip_connect":
                terms.append(inp)
            else:
                terms.append(f"({inp})@{op}")
        nodes.append("+".join(sorted(terms)))
    return nodes[3]


@lru_cache(maxsize=1)
def all_archs() -> tuple[Arch, ...]:
    """All 15,625 cells, in lexicographic order of their op indices (not benchmark order)."""
    return tuple(Arch(ops) for ops in itertools.product(OPS, repeat=NUM_EDGES))


@lru_cache(maxsize=1)
def canonical_classes() -> dict[str, tuple[Arch, ...]]:
    """Map each canonical form to the cells that share it (6,466 classes)."""
    classes: dict[str, list[Arch]] = {}
    for arch in all_archs():
        classes.setdefault(arch.canonical(), []).append(arch)
    return {key: tuple(members) for key, members in classes.items()}


def sample_archs(
    n: int, *, seed: int, unique: bool = False, exclude_zero: bool = False
) -> list[Arch]:
    """A seeded uniform random sample of ``n`` cells.

    With ``unique=True`` no two sampled cells share a canonical form (sampling
    without replacement over classes, each class drawn through a random member
    so that the draw stays uniform over cells). ``exclude_zero`` drops cells
    whose output is always zero (no path from input to output).
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, but got {n=}.")
    rng = np.random.default_rng(seed)
    space = all_archs()
    limit = None
    if unique:
        limit = len({a.canonical() for a in space if not (exclude_zero and a.is_zero)})
    if limit is not None and n > limit:
        raise ValueError(f"only {limit} unique architectures exist, but got {n=}.")
    out: list[Arch] = []
    seen: set[str] = set()
    while len(out) < n:
        arch = space[int(rng.integers(len(space)))]
        key = arch.canonical()
        if exclude_zero and arch.is_zero:
            continue
        if unique:
            if key in seen:
                continue
            seen.add(key)
        out.append(arch)
    return out
