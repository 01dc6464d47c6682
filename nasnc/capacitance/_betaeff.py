r"""βeff of the line graph of a chain of dense layers, explicitly and in closed form.

The network
-----------
A chain of dense layers ``W_0, ..., W_{L-1}`` (PyTorch layout ``[out, in]``;
``W_l`` maps the ``n_l`` neurons of neuron layer ``l`` to the ``n_{l+1}``
neurons of layer ``l+1``) is a layered graph G_A whose nodes are neurons and
whose edges are weights (biases are not edges). Its line graph G_B has one node
per weight. A weight ``e = (i -> j)`` of layer ``l`` (``w_e = W_l[j, i]``) is
adjacent to

* every weight of layer ``l-1`` that enters ``i`` (*upstream*), and
* every weight of layer ``l+1`` that leaves ``j`` (*downstream*),

the weights that backpropagation couples to ``e``'s update
(``∂L/∂w_ji = δ_j a_i``). Adjacency is structural: a dense layer has every
weight, so a weight that is exactly zero is still a node (with strength 0).
Weights of the same layer are never adjacent.

Interaction strengths
---------------------
``P`` is G_B's weighted adjacency matrix (``P[e, f]`` couples ``f`` into ``e``):

* ``chain``:   ``P[e, f] = |w_f|``        for adjacent ``e, f``;
* ``product``: ``P[e, f] = |w_e| · |w_f|`` for adjacent ``e, f``.

With ``normalize=True`` (the *scale-free* reading, suffix ``_sf``) each
layer's ``|W_l|`` is first divided by its mean, so βeff reflects the structure
of the couplings rather than their overall growth (a layer that is all zero
stays zero).

βeff
----
The mean-field reduction of Gao, Barzel & Barabási, applied to training by
Jiang et al. (Nat. Commun. 2024), gives the effective coupling

.. math::

    β_{eff} = \frac{1^T P P 1}{1^T P 1}
            = \frac{\sum_e s_{out}(e)\, s_{in}(e)}{\sum_e s_{in}(e)},
    \qquad s_{in} = P 1,\; s_{out} = P^T 1 .

All-zero weights (``1ᵀP1 = 0``) give ``0.0``, never NaN.

Closed form
-----------
Let ``A_l = |W_l|`` (divided by its mean when normalised), ``S_l = ΣA_l``,
``r_l = A_l 1`` (in-strength of the neurons of layer ``l+1``, length
``n_{l+1}``) and ``c_l = A_lᵀ 1`` (out-strength of the neurons of layer ``l``).
For ``e = (i -> j)`` in layer ``l`` the upstream strength is
``u_l[i] = r_{l-1}[i]`` and the downstream strength ``d_l[j] = c_{l+1}[j]``
(zero at the ends of the chain); ``e`` has
``deg_l = n_{l-1}·[l>0] + n_{l+2}·[l<L-1]`` neighbours. With the junction
products ``p_k = r_k · c_{k+1}`` (``k = 0..L-2``, one per hidden neuron layer):

``chain``:
    ``s_in(e) = u_l[i] + d_l[j]``, ``s_out(e) = deg_l · A_l[j, i]``, so

    ``1ᵀPP1 = Σ_k p_k (deg_k + deg_{k+1})`` and ``1ᵀP1 = Σ_l deg_l S_l``.

``product``:
    ``s_in(e) = s_out(e) = A_l[j, i] (u_l[i] + d_l[j])``, so

    ``1ᵀPP1 = Σ_l [(A_l∘A_l)ᵀ1 · u_l² + (A_l∘A_l)1 · d_l² + 2 d_lᵀ (A_l∘A_l) u_l]``
    and ``1ᵀP1 = 2 Σ_k p_k``.

Every term is a row/column sum, a dot product or one mat-vec of a layer and
its neighbours: O(#weights) work, on the weights' device, no host
synchronisation (the result is a 0-d tensor). Normalisation only rescales
those per-layer scalars by powers of ``1/mean(A_l)``, so all four variants
share one pass over the weights (:func:`beta_eff_variants`).

:func:`line_graph` builds ``P`` explicitly (scipy.sparse, float64) for tests
and small networks; the closed form agrees with ``1ᵀPP1 / 1ᵀP1`` computed
from it to 1e-9 relative in float64.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import scipy.sparse
import torch

from nasnc._errors import ConfigError

__all__ = [
    "INTERACTIONS",
    "VARIANTS",
    "beta_eff",
    "beta_eff_variants",
    "gradient_name",
    "line_graph",
    "probe_weight_change_name",
    "variant_name",
    "weight_change_name",
]

#: The interaction variants, by name.
INTERACTIONS: tuple[str, ...] = ("chain", "product")

#: All four ``(interaction, normalize)`` variants, in the order of :func:`beta_eff_variants`.
VARIANTS: tuple[tuple[str, bool], ...] = (
    ("chain", False),
    ("product", False),
    ("chain", True),
    ("product", True),
)


def variant_name(interaction: str, normalize: bool) -> str:
    """Trajectory key of a variant: ``beta_eff_<interaction>`` plus ``_sf`` when normalised."""
    return f"beta_eff_{interaction}" + ("_sf" if normalize else "")


def weight_change_name(interaction: str, normalize: bool) -> str:
    """Trajectory key of a whole-network βeff of the weight change ``W - W0``.

    ``beta_eff_dw_<interaction>`` plus ``_sf`` when normalised, e.g.
    ``beta_eff_dw_product_sf`` (:class:`~nasnc.capacitance.WeightChangeObserver`).
    """
    return variant_name(interaction, normalize).replace("beta_eff_", "beta_eff_dw_", 1)


def probe_weight_change_name(interaction: str, normalize: bool) -> str:
    """Trajectory key of the probe's βeff of its own weight change ``W - W0``.

    ``beta_eff_probe_dw_<interaction>`` plus ``_sf`` when normalised, e.g.
    ``beta_eff_probe_dw_chain_sf`` (:class:`~nasnc.capacitance.ProbeWeightChangeObserver`).
    """
    return variant_name(interaction, normalize).replace("beta_eff_", "beta_eff_probe_dw_", 1)


def gradient_name(interaction: str, normalize: bool) -> str:
    """Name of a whole-network βeff of the loss gradient at initialisation.

    ``beta_eff_grad_<interaction>`` plus ``_sf`` when normalised, e.g.
    ``beta_eff_grad_product_sf`` (the free score of :mod:`nasnc.proxies`).
    """
    return variant_name(interaction, normalize).replace("beta_eff_", "beta_eff_grad_", 1)


def _check_interaction(interaction: str) -> str:
    if interaction not in INTERACTIONS:
        raise ConfigError(
            f"interaction must be one of {', '.join(map(repr, INTERACTIONS))}, "
            f"but got {interaction=}."
        )
    return interaction


def _check_weights(weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(weights, torch.Tensor):
        raise ConfigError(
            "weights must be a sequence of 2-D weight matrices (one per layer), "
            f"but got a single tensor of shape {tuple(weights.shape)}."
        )
    ws = list(weights)
    if len(ws) < 2:
        raise ConfigError(
            "beta_eff needs a chain of at least 2 dense layers (the line graph of one "
            f"layer has no adjacent weights), but got {len(ws)} layer(s)."
        )
    for idx, w in enumerate(ws):
        if not isinstance(w, torch.Tensor) or w.dim() != 2:
            shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            raise ConfigError(f"layer {idx} must be a 2-D [out, in] tensor, but got {shape}.")
        if w.dtype == torch.bool or w.is_complex():
            raise ConfigError(f"layer {idx} must hold real numbers, but got dtype {w.dtype}.")
        if w.numel() == 0:
            raise ConfigError(f"layer {idx} is empty (shape {tuple(w.shape)}).")
    for idx in range(1, len(ws)):
        if ws[idx].shape[1] != ws[idx - 1].shape[0]:
            raise ConfigError(
                f"layer {idx} takes {ws[idx].shape[1]} inputs but layer {idx - 1} has "
                f"{ws[idx - 1].shape[0]} outputs (shapes {tuple(ws[idx - 1].shape)} -> "
                f"{tuple(ws[idx].shape)}); weights must be [out, in] matrices of one chain."
            )
    return ws


def _compute_dtype(ws: Sequence[torch.Tensor], dtype: torch.dtype | None) -> torch.dtype:
    if dtype is not None:
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ConfigError(f"dtype must be a floating point dtype, but got {dtype=}.")
        return dtype
    # The weights' dtype, promoted to at least float32 (half precision sums lose too much).
    return functools.reduce(torch.promote_types, (w.dtype for w in ws), torch.float32)


def _safe_inverse(x: torch.Tensor) -> torch.Tensor:
    """``1/x``, 0 where ``x == 0`` (an all-zero layer stays zero when normalised), NaN
    where ``x`` is not finite (a diverged layer has no scale)."""
    ok = x != 0
    inv = torch.where(ok, 1.0 / torch.where(ok, x, torch.ones_like(x)), torch.zeros_like(x))
    return torch.where(torch.isfinite(x), inv, torch.full_like(x, math.nan))


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num/den``, and 0 where ``den == 0`` (then ``num == 0`` too: no couplings at
    all); a NaN stays NaN."""
    ok = den != 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


@functools.lru_cache(maxsize=64)
def _constants(
    widths: tuple[int, ...], device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-layer degrees, sizes and junction degree sums on ``device`` (built once per shape).

    Cached so that building them (a host-to-device copy) happens once per
    chain shape, not at every step.
    """
    n_layers = len(widths) - 1
    deg = [
        (widths[layer - 1] if layer > 0 else 0) + (widths[layer + 2] if layer < n_layers - 1 else 0)
        for layer in range(n_layers)
    ]
    sizes = [widths[layer] * widths[layer + 1] for layer in range(n_layers)]
    pair = [deg[k] + deg[k + 1] for k in range(n_layers - 1)]
    with torch.inference_mode(False):  # usable later by autograd even if built in inference mode
        return tuple(torch.tensor(v, dtype=dtype, device=device) for v in (deg, sizes, pair))  # type: ignore[return-value]


def _variants(
    ws: Sequence[torch.Tensor], variants: Sequence[tuple[str, bool]], dtype: torch.dtype
) -> torch.Tensor:
    """βeff of each requested variant as a 1-D tensor (inputs already validated).

    Every sum is taken over the layers divided by their means (``|W_l| / m_l``):
    the scale-free variants read them as they are, the raw ones rescale them by
    the means. Summing powers of the raw weights first (up to ``|w|^4``) and
    rescaling after overflowed or underflowed in float32 long before the
    weights themselves do.
    """
    n_layers = len(ws)
    widths = (int(ws[0].shape[1]), *(int(w.shape[0]) for w in ws))
    raw = [w.abs().to(dtype) for w in ws]
    deg, sizes, pair = _constants(widths, raw[0].device, dtype)
    mean = torch.stack([a.sum() for a in raw]) / sizes  # m_l
    inv_m = _safe_inverse(mean)  # 0 for an all-zero layer, NaN for a diverged one
    mats = [a * inv_m[layer] for layer, a in enumerate(raw)]
    total = torch.stack([a.sum() for a in mats])  # S_l / m_l
    rows = [a.sum(dim=1) for a in mats]  # r_l: in-strength of layer l+1's neurons
    cols = [a.sum(dim=0) for a in mats]  # c_l: out-strength of layer l's neurons
    # junction products p_k = r_k . c_{k+1}, one per hidden neuron layer
    junction = torch.stack([torch.dot(rows[k], cols[k + 1]) for k in range(n_layers - 1)])

    # placeholders, replaced when a product variant is asked for
    up_t = down_t = cross_t = total
    if any(interaction == "product" for interaction, _ in variants):
        zero = total.new_zeros(())
        ups, downs, crosses = [], [], []
        for layer, a in enumerate(mats):
            sq = a * a
            up = rows[layer - 1] if layer > 0 else None  # u_l, indexed by input neuron i
            down = cols[layer + 1] if layer < n_layers - 1 else None  # d_l, by output neuron j
            ups.append(torch.dot(sq.sum(dim=0), up * up) if up is not None else zero)
            downs.append(torch.dot(sq.sum(dim=1), down * down) if down is not None else zero)
            if up is not None and down is not None:
                crosses.append(torch.dot(down, torch.mv(sq, up)))
            else:
                crosses.append(zero)
        up_t, down_t, cross_t = torch.stack(ups), torch.stack(downs), torch.stack(crosses)

    # the layers' scales: 1 for the scale-free variants, their means for the raw ones
    kinds = {}
    for normalize in {n for _, n in variants}:
        m = torch.ones_like(mean) if normalize else mean
        pad = m.new_zeros(1)
        prev = torch.cat([pad, m[:-1]])  # m_{l-1}, 0 before the first layer
        nxt = torch.cat([m[1:], pad])  # m_{l+1}, 0 after the last layer
        kinds[normalize] = (m, junction * m[:-1] * m[1:], prev, nxt)
    out = []
    for interaction, normalize in variants:
        m, p, prev, nxt = kinds[normalize]
        if interaction == "chain":
            num = (p * pair).sum()
            den = (deg * total * m).sum()
        else:
            terms = up_t * prev * prev + down_t * nxt * nxt + 2.0 * cross_t * prev * nxt
            num = (m * m * terms).sum()
            den = 2.0 * p.sum()
        out.append(_safe_ratio(num, den))
    return torch.stack(out)


def beta_eff(
    weights: Sequence[torch.Tensor],
    interaction: str = "chain",
    normalize: bool = False,
    *,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """βeff of the line graph of a chain of dense layers, in closed form.

    Parameters
    ----------
    weights : sequence of torch.Tensor
        The chain's weight matrices in PyTorch layout ``[out, in]``, input side
        first (e.g. :func:`~nasnc.capacitance.dense_chain` of a model); at
        least two layers, consecutive shapes must match.
    interaction : {"chain", "product"}, default "chain"
        ``P[e, f] = |w_f|`` (chain) or ``|w_e|·|w_f|`` (product) for adjacent
        weights ``e, f`` (see the module docstring).
    normalize : bool, default False
        Scale-free βeff: each layer's ``|W|`` divided by its mean first.
    dtype : torch.dtype, optional
        Accumulation dtype; default the weights' dtype promoted to at least
        float32. Pass ``torch.float64`` for exact comparisons (not on MPS).

    Returns
    -------
    torch.Tensor
        0-d tensor on the weights' device (no host synchronisation). Gradients
        flow to weights that require them. ``0.0`` when every weight is zero;
        NaN only if a weight is NaN.

    Raises
    ------
    ConfigError
        Fewer than two layers, a tensor that is not 2-D, empty or not real
        numbers, shapes that do not chain (the message names the layer
        index), or an unknown ``interaction``. A ``ValueError``, as before.

    Examples
    --------
    >>> import torch
    >>> from nasnc.capacitance import beta_eff
    >>> ws = [torch.ones(3, 2), torch.ones(4, 3)]
    >>> float(beta_eff(ws))  # every weight of layer 0 sees 4 downstream, of layer 1 sees 2
    3.0
    """
    _check_interaction(interaction)
    ws = _check_weights(weights)
    return _variants(ws, [(interaction, bool(normalize))], _compute_dtype(ws, dtype))[0]


def beta_eff_variants(
    weights: Sequence[torch.Tensor],
    variants: Sequence[tuple[str, bool]] = VARIANTS,
    *,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Several βeff variants from one pass over the weights.

    Parameters
    ----------
    weights : sequence of torch.Tensor
        As for :func:`beta_eff`.
    variants : sequence of (str, bool), default :data:`VARIANTS`
        ``(interaction, normalize)`` pairs.
    dtype : torch.dtype, optional
        As for :func:`beta_eff`.

    Returns
    -------
    torch.Tensor
        1-D tensor, one value per variant, on the weights' device.
    """
    for interaction, _ in variants:
        _check_interaction(interaction)
    if not variants:
        raise ConfigError(f"variants must name at least one variant, but got {variants=}.")
    ws = _check_weights(weights)
    return _variants(ws, [(i, bool(n)) for i, n in variants], _compute_dtype(ws, dtype))


def line_graph(
    weights: Sequence[torch.Tensor],
    interaction: str = "chain",
    *,
    normalize: bool = False,
) -> scipy.sparse.csr_matrix:
    """The explicit interaction matrix ``P`` of the chain's line graph (for tests, small nets).

    Node ``e`` of layer ``l`` with ``w_e = W_l[j, i]`` has index
    ``offset_l + j·n_l + i`` (layers in order, each flattened row-major like
    ``W_l.flatten()``). Every structurally adjacent pair is stored, in both
    directions, even where the strength is 0, so ``P.nnz`` is
    ``2 Σ_l n_l n_{l+1} n_{l+2}``. Memory grows like that count: keep it to
    small networks; :func:`beta_eff` never needs ``P``.

    Parameters
    ----------
    weights : sequence of torch.Tensor
        As for :func:`beta_eff` (copied to the host as float64).
    interaction : {"chain", "product"}, default "chain"
    normalize : bool, default False
        Use each layer's ``|W|`` divided by its mean.

    Returns
    -------
    scipy.sparse.csr_matrix
        Square float64 matrix of side ``Σ_l n_l n_{l+1}``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from nasnc.capacitance import line_graph
    >>> P = line_graph([torch.ones(3, 2), torch.ones(4, 3)])
    >>> ones = np.ones(P.shape[0])
    >>> float((P.T @ ones) @ (P @ ones) / P.sum())
    3.0
    """
    _check_interaction(interaction)
    ws = _check_weights(weights)
    mats = [np.abs(w.detach().to("cpu", torch.float64).numpy()) for w in ws]
    if normalize:
        mats = [a / a.mean() if a.mean() > 0 else a for a in mats]
    offsets = np.cumsum([0] + [a.size for a in mats])
    rows_idx: list[np.ndarray] = []
    cols_idx: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for layer in range(len(mats) - 1):
        a, b = mats[layer], mats[layer + 1]  # a: [n1, n0], b: [n2, n1]
        n1, n0 = a.shape
        n2 = b.shape[0]
        i, j, k = np.meshgrid(np.arange(n0), np.arange(n1), np.arange(n2), indexing="ij")
        e = (offsets[layer] + j * n0 + i).ravel()  # e = (i -> j) in layer `layer`
        f = (offsets[layer + 1] + k * n1 + j).ravel()  # f = (j -> k) in layer `layer + 1`
        we = a[j, i].ravel()
        wf = b[k, j].ravel()
        if interaction == "chain":
            forward, backward = wf, we  # P[e, f] = |w_f|, P[f, e] = |w_e|
        else:
            forward = backward = we * wf
        rows_idx += [e, f]
        cols_idx += [f, e]
        vals += [forward, backward]
    n = int(offsets[-1])
    coo = scipy.sparse.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows_idx), np.concatenate(cols_idx))), shape=(n, n)
    )
    return coo.tocsr()
