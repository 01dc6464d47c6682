"""The NAS-Bench-201 cell search space.

A cell is a DAG over 4 nodes; node 0 is the cell input, node 3 its output, and
every pair ``i < j`` is joined by one edge carrying one of five operations. The
six edges are kept in the benchmark's order::

    (1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2)

and the benchmark writes a cell as ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``
(node 1 | node 2 | node 3, each token ``op~input``).

A six-digit op code is ambiguous: nasnc (:attr:`Arch.code`, the benchmark's op
order :data:`OPS` and edge order :data:`EDGES`) and NASLib (ops
:data:`NASLIB_OPS`, edges ``0->1, 0->2, 0->3, 1->2, 1->3, 2->3``) read ``000000``
as two different cells. Parsed text must therefore say which it is:
``nb201:310402`` or ``naslib:000000``; a bare code is refused.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

from nasnc._config import check_int
from nasnc._errors import ArchError, ConfigError

__all__ = [
    "EDGES",
    "NASLIB_OPS",
    "NUM_ARCHS",
    "NUM_EDGES",
    "NUM_GRAPHS",
    "NUM_UNIQUE",
    "NUM_UNIQUE_NONZERO",
    "OPS",
    "Arch",
    "all_archs",
    "canonical_classes",
    "sample_archs",
]

#: The five candidate operations, in the benchmark's order (op index = position):
#: ``NAS_BENCH_201`` in D-X-Y/AutoDL-Projects, ``xautodl/models/cell_operations.py``.
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: The six edges as ``(target, source)`` node pairs, in the benchmark's order.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_EDGES = len(EDGES)
#: Size of the space: 5 ** 6.
NUM_ARCHS = len(OPS) ** NUM_EDGES
#: Number of "unique" cells in the benchmark authors' count: classes of
#: :meth:`Arch.canonical`, coarser than distinct networks (see :meth:`Arch.graph_form`).
NUM_UNIQUE = 6466
#: Canonical classes with a path from input to output: the classes a screen or a
#: sample with ``exclude_zero`` draws from (5 classes' output is always zero).
NUM_UNIQUE_NONZERO = 6461
#: Number of distinct networks: classes of :meth:`Arch.graph_form`. The 3,125
#: cells with ``none`` on edge 2<-1 pair up under swapping nodes 1 and 2, except
#: the 125 symmetric ones: 12,500 + (3,125 + 125) / 2.
NUM_GRAPHS = 14125

#: NASLib's op order (``OP_NAMES_NB201`` in automl/NASLib,
#: ``naslib/search_spaces/nasbench201/conversions.py``): a NASLib op index is a position.
NASLIB_OPS: tuple[str, ...] = (
    "skip_connect",
    "none",
    "nor_conv_3x3",
    "nor_conv_1x1",
    "avg_pool_3x3",
)
#: NASLib's edge order (``EDGE_LIST`` of the same file: 1-2, 1-3, 1-4, 2-3, 2-4, 3-4, 1-based)
#: as ``(target, source)`` pairs of :data:`EDGES`.
NASLIB_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (3, 0), (2, 1), (3, 1), (3, 2))
#: Prefixes of the two digit codes accepted by :meth:`Arch.parse`.
NB201_PREFIX = "nb201:"
NASLIB_PREFIX = "naslib:"

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
        """Build from six op indices into :data:`OPS`, in :data:`EDGES`' order (the
        ``nb201:`` code's digits)."""
        idx = _digits(indices, "nb201")
        bad = [i for i in idx if not 0 <= i < len(OPS)]
        if bad:
            raise ArchError(f"op index {bad[0]} is out of range 0..{len(OPS) - 1} in {idx!r}")
        return cls(tuple(OPS[i] for i in idx))

    @classmethod
    def from_naslib(cls, indices: Sequence[int] | str) -> Arch:
        """Build from NASLib's six op indices (its ``op_indices``, or their digit string).

        NASLib orders the ops as :data:`NASLIB_OPS` and the edges ``0->1, 0->2,
        0->3, 1->2, 1->3, 2->3``; ``Arch.from_naslib("000000")`` is the
        all-``skip_connect`` cell.
        """
        idx = _digits(indices, "NASLib")
        bad = [i for i in idx if not 0 <= i < len(NASLIB_OPS)]
        if bad:
            raise ArchError(
                f"NASLib op index {bad[0]} is out of range 0..{len(NASLIB_OPS) - 1} in {idx!r}"
            )
        by_edge = dict(zip(NASLIB_EDGES, (NASLIB_OPS[i] for i in idx), strict=True))
        return cls(tuple(by_edge[edge] for edge in EDGES))

    def to_naslib(self) -> tuple[int, ...]:
        """NASLib's six op indices of this cell (``from_naslib`` reads them back)."""
        return tuple(NASLIB_OPS.index(self.op(*edge)) for edge in NASLIB_EDGES)

    @classmethod
    def parse(cls, value: str | Arch) -> Arch:
        """Accept an :class:`Arch`, a benchmark string or a prefixed six-digit op code.

        ``nb201:310402`` is :attr:`code` (the benchmark's op and edge order),
        ``naslib:000000`` NASLib's op indices (:meth:`from_naslib`). A bare
        code is refused: the two conventions read it as different cells.
        """
        if isinstance(value, Arch):
            return value
        text = str(value).strip()
        lowered = text.lower()
        if lowered.startswith(NB201_PREFIX):
            return cls.from_indices(_digits(text[len(NB201_PREFIX) :].strip(), "nb201"))
        if lowered.startswith(NASLIB_PREFIX):
            return cls.from_naslib(text[len(NASLIB_PREFIX) :].strip())
        if text.isdigit() and len(text) != NUM_EDGES:
            raise ArchError(
                f"a cell is a benchmark string '|op~0|+|op~0|op~1|+...' or a {NUM_EDGES}-digit "
                f"op code prefixed {NB201_PREFIX} or {NASLIB_PREFIX}, but got {text!r}"
            )
        prefix, colon, rest = text.partition(":")
        if colon and "|" not in prefix and rest.strip().isdigit():  # foo:123412
            raise ArchError(
                f"unknown op-code prefix {prefix + ':'!r} in {text!r}; "
                f"known: {NB201_PREFIX} (nasnc/NAS-Bench-201 order), {NASLIB_PREFIX} (NASLib order)"
            )
        if text.isdigit():
            raise ArchError(
                f"a bare op code is ambiguous, but got {text!r}: write "
                f"'{NB201_PREFIX}{text}' (nasnc/NAS-Bench-201 order: {', '.join(OPS)}) or "
                f"'{NASLIB_PREFIX}{text}' (NASLib order: {', '.join(NASLIB_OPS)})"
            )
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
        """The six op indices as a digit string, e.g. ``"310402"`` (parse it as ``nb201:...``)."""
        return "".join(str(i) for i in self.op_indices)

    @property
    def naslib_code(self) -> str:
        """NASLib's op indices as a digit string (parse it as ``naslib:...``)."""
        return "".join(str(i) for i in self.to_naslib())

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

        Nor is it "the same network". The expansion forgets which terms share
        a node, so ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|
        skip_connect~1|skip_connect~2|`` (one convolution, doubled) and
        ``|none~0|+|nor_conv_3x3~0|none~1|+|nor_conv_3x3~0|none~1|
        skip_connect~2|`` (two convolutions) share it; it ignores operations
        that cannot reach the output though they hold parameters; and it
        splits cells that differ only by naming nodes 1 and 2 (node 2's sum
        carries a zero term for its edge from node 1).
        Results are shared by :meth:`graph_form`, never by this form.
        """
        return _canonical(self.ops)

    def graph_form(self) -> str:
        """The benchmark string shared by the cells that build the same network.

        Two cells share it exactly when their operation graphs are isomorphic
        with the input and output fixed: the only relabelling is swapping the
        intermediate nodes 1 and 2, allowed when the edge between them is
        ``none`` (no edge). The form is the lesser (by op names) of the cell
        and its swap. Such cells build the same layers wired the same way, so
        they have equal parameter counts, FLOPs and functions, and, built in
        :meth:`graph_edges` order, the same seeded weights: one's run is the
        other's, bit for bit. The cache keys runs by this form
        (:data:`NUM_GRAPHS` classes).

        >>> Arch.parse("nb201:300200").graph_form() == Arch.parse("nb201:030200").graph_form()
        True
        >>> Arch.parse("nb201:300200").graph_form() == Arch.parse("nb201:300020").graph_form()
        False
        """
        return _graph_form(self.ops)

    def graph_edges(self) -> tuple[tuple[int, int], ...]:
        """This cell's edges ``(target, source)``, listed in the order the cell of
        its :meth:`graph_form` lists its own: :data:`EDGES`, or for the other of two
        twins its edges with nodes 1 and 2 swapped. Building and running a cell in
        this order gives twins the same seeded weights and the same sums, bit for
        bit, so a shared cache entry is exactly what either would have computed.
        """
        if _graph_form(self.ops) == str(self):
            return EDGES
        return _SWAPPED_EDGES


def _digits(value: Sequence[int] | str, convention: str) -> tuple[int, ...]:
    """Six op indices from a sequence of ints or a digit string; ArchError otherwise."""
    if isinstance(value, str):
        if len(value) != NUM_EDGES or not (value.isascii() and value.isdigit()):
            raise ArchError(f"a {convention} op code is {NUM_EDGES} digits, but got {value!r}")
        return tuple(int(c) for c in value)
    items = list(value)
    odd = [i for i in items if isinstance(i, bool) or not isinstance(i, (int, np.integer))]
    if odd:  # 3.9 was truncated to 3, "a" failed inside int()
        raise ArchError(
            f"{convention} op indices must be integers, but got {odd[0]!r} in {items!r}"
        )
    idx = tuple(int(i) for i in items)
    if len(idx) != NUM_EDGES:
        raise ArchError(f"{NUM_EDGES} {convention} op indices are needed, got {len(idx)}: {idx!r}")
    return idx


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


#: Edge positions (in :data:`EDGES`) after swapping nodes 1 and 2.
_SWAP_1_2 = tuple(EDGES.index((t, s)) for t, s in ((2, 0), (1, 0), (2, 1), (3, 0), (3, 2), (3, 1)))
_EDGE_2_1 = EDGES.index((2, 1))
_SWAPPED_EDGES = tuple(EDGES[i] for i in _SWAP_1_2)


@cache
def _graph_form(ops: tuple[str, ...]) -> str:
    if ops[_EDGE_2_1] != "none":
        return str(Arch(ops))
    return str(min(Arch(ops), Arch(tuple(ops[i] for i in _SWAP_1_2))))


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
    n, seed = check_int("n", n), check_int("seed", seed)
    rng = np.random.default_rng(seed)
    space = all_archs()
    limit = None
    if unique:
        limit = len({a.canonical() for a in space if not (exclude_zero and a.is_zero)})
    if limit is not None and n > limit:
        kind = "non-zero unique" if exclude_zero else "unique"
        raise ConfigError(f"only {limit} {kind} architectures exist, but got {n=}.")
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
