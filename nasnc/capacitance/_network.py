r"""βeff of the whole network's coupling graph (every conv and linear layer).

The network as a graph
----------------------
G_A's nodes are *channels*, its edges the kernels of every convolution and
linear layer: layer ``l`` with weight ``W_l`` of shape ``[out, in, *k]``
couples input channel ``i`` to output channel ``j`` with strength

    ``A_l[j, i] = Σ_spatial |W_l[j, i, ...]|``   (the L1 mass of the kernel).

Every other operation of a NB-201 network -- skip connections, average
pooling, BatchNorm, ReLU, the cell's node sums, global pooling, flatten --
maps channel ``c`` to channel ``c`` and has no coupling of its own, so it is
contracted: layer ``m`` *feeds* layer ``l`` (``m -> l``) when a path of such
parameter-free operations leads from ``m``'s output to ``l``'s input (they
then have the same number of channels, ``out_m == in_l``). The layers and the
*feeds* relation form the :class:`CouplingGraph`, a DAG.

Its line graph G_B has one node per kernel entry ``e = (i -> j)`` of layer
``l``; ``e`` is adjacent to every ``f = (h -> i)`` of a layer feeding ``l``
(upstream) and every ``f = (j -> k)`` of a layer that ``l`` feeds
(downstream). For a chain of dense layers this is exactly the probe's line
graph (:func:`~nasnc.capacitance.line_graph`). Interaction strengths, βeff
and the scale-free reading are those of :mod:`nasnc.capacitance._betaeff`:
``chain`` ``P[e, f] = A_f``, ``product`` ``P[e, f] = A_e A_f``,
``normalize`` divides each layer's ``A_l`` by its mean, and

    βeff = 1ᵀPP1 / 1ᵀP1.

Which layers count
------------------
Only *live* layers: those whose input depends on the network's input and
whose output reaches its output (:func:`coupling_graph` traces one forward
pass through autograd). A convolution on a cell edge whose source node is
never computed, or whose result never reaches the cell's output, gets no
gradient and is left out. A network whose output does not depend on its
input at all (a cell with no path from input to output) has no live layer:
its βeff is **NaN** by definition (nothing couples; ranking it is
meaningless). Otherwise a graph whose ``1ᵀP1`` is 0 (all weights zero) gives
``0.0``, as for the probe.

Closed form (O(#parameters))
----------------------------
With ``r_l = A_l 1`` (row sums, per output channel), ``c_l = A_lᵀ 1`` (column
sums, per input channel), ``S_l = ΣA_l``, the upstream strength of an input
channel ``u_l = Σ_{m -> l} r_m`` and the downstream strength of an output
channel ``d_l = Σ_{l -> m} c_m``, every entry of layer ``l`` has
``deg_l = Σ_{m -> l} in_m + Σ_{l -> m} out_m`` neighbours, and

``chain``:   ``s_in(e) = u_l[i] + d_l[j]``, ``s_out(e) = deg_l A_l[j, i]``;
    ``1ᵀPP1 = Σ_l deg_l (c_l·u_l + r_l·d_l)``, ``1ᵀP1 = Σ_l deg_l S_l``.

``product``: ``s_in(e) = s_out(e) = A_l[j, i] (u_l[i] + d_l[j])``;
    ``1ᵀPP1 = Σ_l [(A_l∘A_l)ᵀ1·u_l² + (A_l∘A_l)1·d_l² + 2 d_lᵀ(A_l∘A_l)u_l]``,
    ``1ᵀP1 = Σ_l (c_l·u_l + r_l·d_l)``.

:func:`network_beta_eff` evaluates these on the weights' device;
:func:`network_line_graph` builds ``P`` explicitly (scipy.sparse, float64)
for tests and small networks. They agree to 1e-9 in float64.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse
import torch
from torch import nn

from nasnc._errors import ConfigError
from nasnc.capacitance._betaeff import VARIANTS, _check_interaction, weight_change_name

__all__ = [
    "WEIGHT_CHANGE_VARIANTS",
    "CouplingGraph",
    "WeightChangeObserver",
    "coupling_graph",
    "coupling_matrices",
    "network_beta_eff",
    "network_line_graph",
]

#: The variant(s) :class:`WeightChangeObserver` records by default: the scale-free
#: ``product`` βeff of ``W - W0`` (issue 11, docs/capacitance-study.md).
WEIGHT_CHANGE_VARIANTS: tuple[tuple[str, bool], ...] = (("product", True),)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CouplingGraph:
    """Live conv/linear layers of a network and which feeds which.

    Attributes
    ----------
    names : tuple of str
        Qualified module names of the live layers, in execution order.
    shapes : tuple of (int, int)
        ``(out, in)`` channels of each layer.
    edges : tuple of (int, int)
        ``(m, l)``: layer ``m`` feeds layer ``l`` (indices into ``names``),
        sorted, without duplicates; ``out_m == in_l``.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, int], ...]
    edges: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        n = len(self.shapes)
        if len(self.names) != n:
            raise ConfigError(f"need one name per layer, but got {len(self.names)} for {n} shapes.")
        for m, t in self.edges:
            if not (0 <= m < n and 0 <= t < n) or m == t:
                raise ConfigError(f"edge {(m, t)} must join two different layers of {n}.")
            if self.shapes[m][0] != self.shapes[t][1]:
                raise ConfigError(
                    f"layer {m} ({self.names[m]}) has {self.shapes[m][0]} output channels but "
                    f"feeds layer {t} ({self.names[t]}) with {self.shapes[t][1]} inputs."
                )

    def __len__(self) -> int:
        return len(self.names)

    def weights(self, model: nn.Module) -> list[torch.Tensor]:
        """The live layers' weight tensors of ``model`` (views, no copy), in graph order."""
        modules = dict(model.named_modules())
        missing = [n for n in self.names if n not in modules]
        if missing:
            raise ConfigError(f"model has no layer {missing[0]!r} of this coupling graph.")
        out = []
        for n in self.names:
            weight = modules[n].weight
            assert isinstance(weight, torch.Tensor)  # a Conv2d or Linear by construction
            out.append(weight)
        return out


_LAYERS = (nn.Conv2d, nn.Linear)


def coupling_graph(model: nn.Module, example: torch.Tensor) -> CouplingGraph:
    """Trace ``model`` on ``example`` and return its live :class:`CouplingGraph`.

    One forward pass with autograd on (the model's parameters must require
    grad; nothing is backpropagated and no state but BatchNorm running
    statistics in train mode is touched -- trace in ``eval()`` to avoid that).
    Parameter-free operations between layers are contracted (see the module
    docstring); the structure does not depend on the input's resolution, so
    a small ``example`` (e.g. ``1 x 3 x 8 x 8``) is enough.

    Raises
    ------
    ConfigError
        A grouped convolution, a layer called twice, or a feed between layers
        whose channel counts differ (an operation that mixes channels without
        parameters, which this graph does not model).
    """
    records: dict[str, tuple[object, bool]] = {}
    order: list[str] = []
    handles = []
    touched: dict[int, dict[str, object]] = {}

    def hook(name: str):  # type: ignore[no-untyped-def]
        def record(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            if name in records:
                raise ConfigError(f"layer {name!r} is called twice; shared weights not supported.")
            if out.grad_fn is not None:
                _tags(out.grad_fn, touched)[_LAYER] = name
            records[name] = (inp[0].grad_fn, inp[0] is x)
            order.append(name)

        return record

    x = example.detach().clone().requires_grad_(True)
    shapes: dict[str, tuple[int, int]] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, _LAYERS):
            if isinstance(mod, nn.Conv2d) and mod.groups != 1:
                raise ConfigError(f"grouped convolution {name!r} is not supported.")
            w = mod.weight
            shapes[name] = (int(w.shape[0]), int(w.shape[1]))
            handles.append(mod.register_forward_hook(hook(name)))
    try:
        with torch.enable_grad():
            out = model(x)
        return _live_graph(records, order, shapes, x, out, touched)
    finally:
        for h in handles:
            h.remove()
        for tags in touched.values():  # the trace leaves no mark on the graph's nodes
            tags.pop(_LAYER, None)
            tags.pop(_SEEN, None)


#: Keys of the marks :func:`coupling_graph` puts in autograd nodes' ``metadata``
#: while it traces: the metadata dict lives on the C++ node, so a mark stays with
#: its node. The Python object that ``next_functions`` returns for a node may
#: live only as long as a reference to it (torch 2.11): once let go, the next
#: node's object can take its address, so a ``seen`` set of ``id()`` values skipped
#: nodes never visited and the trace lost every layer (all whole-network βeff
#: NaN; torch 2.13 kept the objects, so it never showed there).
_LAYER = "nasnc.coupling_graph.layer"
_SEEN = "nasnc.coupling_graph.seen"


def _tags(node: Any, touched: dict[int, dict[str, object]]) -> dict[str, object]:
    tags: dict[str, object] = node.metadata
    touched[id(tags)] = tags  # kept alive here, so the id stays unique
    return tags


def _live_graph(
    records: dict[str, tuple[object, bool]],
    order: list[str],
    shapes: dict[str, tuple[int, int]],
    x: torch.Tensor,
    out: torch.Tensor,
    touched: dict[int, dict[str, object]],
) -> CouplingGraph:
    """The layers of one traced forward pass that are live, and their feeds."""
    visit = 0

    def sources(start: Any) -> tuple[set[str], bool]:
        """Layers whose output reaches ``start`` through parameter-free nodes; input reached?"""
        nonlocal visit
        visit += 1
        found: set[str] = set()
        reached = False
        stack = [start]
        while stack:
            node = stack.pop()
            if node is None:
                continue
            if hasattr(node, "variable"):  # a leaf's AccumulateGrad: the input, or a weight
                reached = reached or node.variable is x
                continue
            tags = _tags(node, touched)
            if tags.get(_SEEN) == visit:
                continue
            tags[_SEEN] = visit
            if _LAYER in tags:
                found.add(str(tags[_LAYER]))
                continue
            stack.extend(nxt for nxt, _ in node.next_functions)
        return found, reached

    preds: dict[str, set[str]] = {}
    from_input: dict[str, bool] = {}
    for name in order:  # execution order is topological
        grad_fn, is_input = records[name]
        found, reached = sources(grad_fn)
        preds[name] = found
        from_input[name] = is_input or reached or any(from_input[m] for m in found)
    final, _ = sources(out.grad_fn)
    to_output: set[str] = set()
    stack = list(final)
    while stack:
        name = stack.pop()
        if name not in to_output:
            to_output.add(name)
            stack.extend(preds[name])
    live = [n for n in order if from_input[n] and n in to_output]
    index = {n: k for k, n in enumerate(live)}
    edges = sorted({(index[m], index[n]) for n in live for m in preds[n] if m in index})
    for m, t in edges:
        if shapes[live[m]][0] != shapes[live[t]][1]:
            raise ConfigError(
                f"layer {live[m]!r} ({shapes[live[m]][0]} channels) feeds {live[t]!r} "
                f"({shapes[live[t]][1]} inputs) through an operation that mixes channels."
            )
    logger.debug(
        "coupling graph: %d live of %d layers, %d feeds", len(live), len(order), len(edges)
    )
    return CouplingGraph(
        names=tuple(live), shapes=tuple(shapes[n] for n in live), edges=tuple(edges)
    )


def coupling_matrices(
    weights: Sequence[torch.Tensor], *, dtype: torch.dtype | None = None
) -> list[torch.Tensor]:
    """``A_l[out, in] = Σ_spatial |W_l|`` of each layer (conv kernels summed, dense as is)."""
    mats = []
    for w in weights:
        a = w.detach().abs()
        if dtype is not None:
            a = a.to(dtype)
        elif not a.is_floating_point() or a.element_size() < 4:
            a = a.float()
        mats.append(a.flatten(2).sum(dim=2) if a.dim() > 2 else a)
    return mats


def _check(graph: CouplingGraph, weights: Sequence[torch.Tensor]) -> None:
    if not isinstance(graph, CouplingGraph):
        raise ConfigError(f"graph must be a CouplingGraph, but got {type(graph).__name__}.")
    if len(weights) != len(graph):
        raise ConfigError(f"need one weight per layer ({len(graph)}), but got {len(weights)}.")
    for k, (w, shape) in enumerate(zip(weights, graph.shapes)):
        if w.dim() < 2 or (int(w.shape[0]), int(w.shape[1])) != shape:
            raise ConfigError(
                f"weight {k} ({graph.names[k]}) has shape {tuple(w.shape)}, expected {shape} "
                "for its [out, in] channels."
            )


def _sums(
    graph: CouplingGraph, mats: Sequence[torch.Tensor]
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Row sums, column sums, upstream ``u_l`` and downstream ``d_l`` strengths."""
    rows = [a.sum(dim=1) for a in mats]
    cols = [a.sum(dim=0) for a in mats]
    ups = [torch.zeros_like(c) for c in cols]
    downs = [torch.zeros_like(r) for r in rows]
    for m, t in graph.edges:
        ups[t] = ups[t] + rows[m]
        downs[m] = downs[m] + cols[t]
    return rows, cols, ups, downs


@functools.lru_cache(maxsize=256)
def _degrees(graph: CouplingGraph) -> tuple[int, ...]:
    deg = [0] * len(graph)
    for m, t in graph.edges:
        deg[t] += graph.shapes[m][1]  # entries of m entering one of t's input channels
        deg[m] += graph.shapes[t][0]  # entries of t leaving one of m's output channels
    return tuple(deg)


def network_beta_eff(
    graph: CouplingGraph,
    weights: Sequence[torch.Tensor],
    variants: Sequence[tuple[str, bool]] = VARIANTS,
    *,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """βeff of the coupling graph in closed form, one value per variant.

    Parameters
    ----------
    graph : CouplingGraph
        From :func:`coupling_graph` (or built by hand).
    weights : sequence of torch.Tensor
        One ``[out, in, *kernel]`` tensor per layer of ``graph`` (e.g.
        ``graph.weights(model)``, or ``W - W0`` for the weight change).
    variants : sequence of (str, bool), default :data:`~nasnc.capacitance.VARIANTS`
        ``(interaction, normalize)`` pairs.
    dtype : torch.dtype, optional
        Accumulation dtype (default: the weights', at least float32).

    Returns
    -------
    torch.Tensor
        1-D, one value per variant, on the weights' device (detached: no
        gradient flows). NaN for every
        variant when ``graph`` has no layer (the output does not depend on
        the input); 0.0 when ``1ᵀP1 = 0``.
    """
    variants = [(_check_interaction(i), bool(n)) for i, n in variants]
    if not variants:
        raise ConfigError(f"variants must name at least one variant, but got {variants=}.")
    _check(graph, weights)
    if len(graph) == 0:
        return torch.full((len(variants),), math.nan, dtype=dtype or torch.float32)
    raw = coupling_matrices(weights, dtype=dtype)
    deg = _degrees(graph)
    out = []
    cache: dict[bool, tuple[torch.Tensor, ...]] = {}
    for interaction, normalize in variants:
        if normalize not in cache:
            mats = raw
            if normalize:
                # divide by the mean without a host sync; an all-zero layer stays zero
                mats = [a / torch.where(a.mean() > 0, a.mean(), 1.0) for a in raw]
            rows, cols, ups, downs = _sums(graph, mats)
            flow = torch.stack([c @ u + r @ d for r, c, u, d in zip(rows, cols, ups, downs)])
            total = torch.stack([a.sum() for a in mats])
            degs = torch.tensor(deg, dtype=total.dtype, device=total.device)
            sq = [a * a for a in mats]
            prod = torch.stack(
                [
                    q.sum(0) @ (u * u) + q.sum(1) @ (d * d) + 2.0 * (d @ (q @ u))
                    for q, u, d in zip(sq, ups, downs)
                ]
            )
            cache[normalize] = (
                (degs * flow).sum(),
                (degs * total).sum(),
                prod.sum(),
                flow.sum(),
            )
        chain_num, chain_den, prod_num, prod_den = cache[normalize]
        num, den = (chain_num, chain_den) if interaction == "chain" else (prod_num, prod_den)
        out.append(torch.where(den > 0, num / torch.where(den > 0, den, 1.0), 0.0 * num))
    return torch.stack(out)


def network_line_graph(
    graph: CouplingGraph,
    weights: Sequence[torch.Tensor],
    interaction: str = "chain",
    *,
    normalize: bool = False,
) -> scipy.sparse.csr_matrix:
    """The explicit interaction matrix ``P`` of the coupling graph's line graph (float64).

    Node ``(l, j, i)`` (entry ``A_l[j, i]``) has index ``offset_l + j·in_l + i``.
    Every structurally adjacent pair is stored in both directions, even where
    the strength is 0. For tests and small networks only.
    """
    _check_interaction(interaction)
    _check(graph, weights)
    mats = [a.cpu().numpy() for a in coupling_matrices(weights, dtype=torch.float64)]
    if normalize:
        mats = [a / a.mean() if a.mean() > 0 else a for a in mats]
    offsets = np.cumsum([0] + [a.size for a in mats])
    rows_idx: list[np.ndarray] = []
    cols_idx: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for m, t in graph.edges:
        a, b = mats[m], mats[t]  # a: [n1, n0] feeds b: [n2, n1]
        n1, n0 = a.shape
        n2 = b.shape[0]
        i, j, k = np.meshgrid(np.arange(n0), np.arange(n1), np.arange(n2), indexing="ij")
        e = (offsets[m] + j * n0 + i).ravel()  # e = (i -> j) in layer m
        f = (offsets[t] + k * n1 + j).ravel()  # f = (j -> k) in layer t
        we, wf = a[j, i].ravel(), b[k, j].ravel()
        forward, backward = (wf, we) if interaction == "chain" else (we * wf, we * wf)
        rows_idx += [e, f]
        cols_idx += [f, e]
        vals += [forward, backward]
    n = int(offsets[-1])
    if not vals:
        return scipy.sparse.csr_matrix((n, n))
    coo = scipy.sparse.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows_idx), np.concatenate(cols_idx))), shape=(n, n)
    )
    return coo.tocsr()


class WeightChangeObserver:
    """Whole-network βeff of the weight change ``W - W0`` at every report point.

    A ``nasnc.train`` observer (structurally, like
    :class:`~nasnc.capacitance.CapacitanceObserver`). At the start of training
    it traces the model's :class:`CouplingGraph` once on zeros of shape
    ``example_shape`` (in ``eval()`` mode, so BatchNorm running statistics are
    not touched; every module's training flag is restored afterwards) and
    keeps detached clones ``W0`` of the live layers' weights on their device.
    At each report point it returns :func:`network_beta_eff` of
    ``[W - W0 for each layer]`` under the keys
    :func:`~nasnc.capacitance.weight_change_name` (default
    ``beta_eff_dw_product_sf``). Nothing runs at optimiser steps.

    The values are **NaN**, never an error, when the trace fails or the graph
    is empty (a cell whose output does not depend on its input).

    Parameters
    ----------
    example_shape : sequence of int
        Shape of the tracing input, e.g. ``(1, 3, H, W)`` (the graph does not
        depend on the resolution).
    variants : sequence of (str, bool), default :data:`WEIGHT_CHANGE_VARIANTS`
        ``(interaction, normalize)`` pairs.
    dtype : torch.dtype, optional
        Accumulation dtype; default float64 (float32 on MPS).
    """

    def __init__(
        self,
        example_shape: Sequence[int],
        variants: Sequence[tuple[str, bool]] = WEIGHT_CHANGE_VARIANTS,
        *,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.example_shape = tuple(int(d) for d in example_shape)
        self.variants = tuple((_check_interaction(i), bool(n)) for i, n in variants)
        if not self.variants:
            raise ConfigError(f"variants must name at least one variant, but got {variants=}.")
        self.dtype = dtype
        self.keys: tuple[str, ...] = tuple(weight_change_name(*v) for v in self.variants)
        self.graph: CouplingGraph | None = None
        self._weights: list[torch.Tensor] = []
        self._w0: list[torch.Tensor] = []

    def __repr__(self) -> str:
        return f"WeightChangeObserver(example_shape={self.example_shape}, keys={self.keys})"

    def on_train_start(self, model: nn.Module, total_steps: int) -> None:
        """Trace the coupling graph and keep ``W0``; a failed trace leaves NaN values."""
        self.graph, self._weights, self._w0 = None, [], []
        modes = [(m, m.training) for m in model.modules()]
        try:
            param = next(model.parameters(), None)
            device = param.device if param is not None else torch.device("cpu")
            example = torch.zeros(self.example_shape, device=device)
            graph = coupling_graph(model.eval(), example)
            weights = graph.weights(model)
        except Exception as exc:  # any model the trace cannot read: NaN, not a crash
            logger.warning("weight-change βeff disabled: tracing the model failed: %s", exc)
            return
        finally:
            for module, training in modes:
                module.training = training
        self.graph, self._weights = graph, weights
        self._w0 = [w.detach().clone() for w in weights]

    def on_step(self, step: int, model: nn.Module) -> None:
        """Nothing: the weight change is read at report points only."""

    def on_report(self, step: int) -> dict[str, float]:
        """βeff of ``W - W0`` for each variant (one host sync); NaN without a graph."""
        if self.graph is None or len(self.graph) == 0:
            return dict.fromkeys(self.keys, math.nan)
        dtype = self.dtype
        if dtype is None:
            dtype = torch.float32 if self._w0[0].device.type == "mps" else torch.float64
        with torch.no_grad():
            delta = [w.detach() - w0 for w, w0 in zip(self._weights, self._w0)]
            values = network_beta_eff(self.graph, delta, self.variants, dtype=dtype).tolist()
        return {k: float(v) for k, v in zip(self.keys, values)}

    def on_train_end(self) -> None:
        """Release ``W0`` and the weight references."""
        self._weights, self._w0 = [], []
