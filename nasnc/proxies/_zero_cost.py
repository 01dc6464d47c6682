"""Zero-cost proxies: scores of an untrained network from one batch of data.

Definitions follow Abdelfattah et al., "Zero-Cost Proxies for Lightweight
NAS" (ICLR 2021) and their reference implementation, Mellor et al.,
"Neural Architecture Search without Training" (ICML 2021) for NASWOT, Li et
al., "ZiCo" (ICLR 2023) for ZiCo and Jiang et al., "MeCo" (NeurIPS 2023)
for MeCo (each function's docstring says where it departs from the authors'
code).
Every score is oriented so that **higher predicts better accuracy** and is
computed on a private copy of the caller's model (equal to a deep copy, built
without deepcopy's generic overhead: :func:`_clone_module`): the caller's
parameters, buffers, gradients, mode and hooks are never touched, and the
caller's module hooks do not run during the proxies' passes (they are dropped
from the copy). Hooks used internally live on the copy and are removed in
``finally``.

Common conventions (those of the reference implementation):

* the copy is put in training mode, so BatchNorm normalises with the
  statistics of the batch (the running statistics of the copy change, the
  caller's do not);
* the summed layers are the convolutions and linear layers (``nn.Conv1d``,
  ``nn.Conv2d``, ``nn.Conv3d``, ``nn.Linear``), their ``weight`` only;
* the loss is the mean cross-entropy of the logits against ``labels``.

A non-finite result is returned as ``nan`` and a warning naming the proxy is
logged; it is never replaced by a finite stand-in.
"""

from __future__ import annotations

import copy
import copyreg
import itertools
import logging
import math
import types
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from nasnc._errors import ConfigError
from nasnc.capacitance import VARIANTS, coupling_graph, gradient_name, network_beta_eff
from nasnc.models import count_macs, count_params

__all__ = [
    "BETA_EFF_GRAD",
    "beta_eff_grad",
    "fisher",
    "flops",
    "grad_norm",
    "gradient_beta_eff",
    "grasp",
    "jacob_cov",
    "meco",
    "naswot",
    "params",
    "snip",
    "synflow",
    "zico",
]

logger = logging.getLogger(__name__)

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
#: Ridge added to the eigenvalues of the Jacobian correlation matrix (reference value).
JACOB_COV_EPS = 1e-5


# --------------------------------------------------------------------- helpers
def _finite(name: str, value: float) -> float:
    """Return ``value``, or ``nan`` with a logged warning when it is not finite."""
    if math.isfinite(value):
        return value
    logger.warning("proxy %r is not finite (%r); reported as nan", name, value)
    return math.nan


#: The dicts of ``torch.nn.Module.__dict__`` that hold the forward and backward hooks
#: a copy must not keep (torch's private fields: there is no public way to clone a
#: module without its hooks; tests/test_proxy_copy.py checks this list against the
#: installed torch, so a hook dict a later torch adds fails a test, not a user).
_MODULE_HOOKS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)


#: Attribute values a module copy may share with the original (immutable).
_ATOMIC: frozenset[type] = frozenset(
    {
        type(None),
        bool,
        int,
        float,
        complex,
        str,
        bytes,
        type,
        types.FunctionType,
        types.BuiltinFunctionType,
        torch.dtype,
        torch.device,
        torch.layout,
        torch.memory_format,
    }
)
_EMPTY_OK: frozenset[type] = frozenset({dict, OrderedDict, set, list})
_CLONABLE: dict[type, bool] = {}


def _clonable(cls: type) -> bool:
    """Whether ``copy.deepcopy`` of a ``cls`` instance is nn.Module's default protocol.

    That protocol is ``cls.__new__`` then ``__setstate__`` of a deep copy of
    ``__getstate__()`` (a copy of ``__dict__``); :func:`_clone_module` repeats
    it without the generic machinery. Anything customised falls back to deepcopy.
    """
    ok = _CLONABLE.get(cls)
    if ok is None:
        ok = (
            cls.__reduce_ex__ is object.__reduce_ex__
            and cls.__reduce__ is object.__reduce__
            and getattr(cls, "__deepcopy__", None) is None
            and cls.__getstate__ is nn.Module.__getstate__
            and cls not in copyreg.dispatch_table
            and "__slots__" not in cls.__dict__
        )
        _CLONABLE[cls] = ok
    return ok


def _atomic(value: object) -> bool:
    kind = type(value)
    if kind in _ATOMIC:
        return True
    if kind is tuple or kind is torch.Size:
        return all(map(_atomic, value))  # type: ignore[call-overload]
    return False


def _copy_value(value: Any, memo: dict[int, Any]) -> Any:
    """``copy.deepcopy(value, memo)``, short-cut for immutable and trivial values."""
    kind = type(value)
    if kind in _ATOMIC:
        return value
    got = memo.get(id(value))
    if got is not None:
        return got
    if (kind is tuple or kind is torch.Size) and _atomic(value):
        return value
    if kind in _EMPTY_OK and not value:
        new = kind()
    elif kind is list and all(map(_atomic, value)):
        new = list(value)
    else:
        return copy.deepcopy(value, memo)
    memo[id(value)] = new
    return new


def _copy_buffer(tensor: torch.Tensor, memo: dict[int, Any]) -> torch.Tensor:
    """``copy.deepcopy(tensor, memo)``; a plain dense leaf is cloned directly (same values)."""
    got = memo.get(id(tensor))
    if got is not None:
        return got
    if (
        type(tensor) is torch.Tensor
        and tensor.is_leaf
        and not tensor.requires_grad
        and tensor.grad is None
        and tensor.layout is torch.strided
        and tensor.device.type in ("cpu", "cuda")
        and not tensor.is_quantized
        and tensor.storage_offset() == 0
        and tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
    ):  # a view of a larger storage goes through deepcopy, which keeps the storage shared
        with torch.no_grad():
            new = tensor.clone(memory_format=torch.preserve_format)
        memo[id(tensor)] = new
        return new
    return copy.deepcopy(tensor, memo)


def _clone_module(module: nn.Module, memo: dict[int, Any]) -> nn.Module:
    """``copy.deepcopy(module, memo)`` without the caller's module hooks, 5-10x faster.

    For modules using nn.Module's default copy protocol the copy is built
    directly: parameters by their own ``__deepcopy__`` (a clone), buffers
    cloned, children cloned recursively, immutable attributes shared (as
    deepcopy does), the module-hook dicts left empty; everything else goes
    through ``copy.deepcopy`` with the same ``memo`` (shared tensors and
    modules stay shared). A tensor already in ``memo`` maps to its entry.
    """
    got = memo.get(id(module))
    if got is not None:
        return got
    cls = type(module)
    if not _clonable(cls):
        return copy.deepcopy(module, memo)
    new = cls.__new__(cls)
    memo[id(module)] = new
    state: dict[str, Any] = {}
    for name, value in module.__dict__.items():
        if name == "_parameters":
            state[name] = {
                k: None if p is None else copy.deepcopy(p, memo) for k, p in value.items()
            }
        elif name == "_buffers":
            state[name] = {
                k: None if b is None else _copy_buffer(b, memo) for k, b in value.items()
            }
        elif name == "_modules":
            state[name] = {
                k: None if c is None else _clone_module(c, memo) for k, c in value.items()
            }
        elif name in _MODULE_HOOKS:
            state[name] = OrderedDict()
        else:
            state[name] = _copy_value(value, memo)
    new.__setstate__(state)
    return new


def _shared_storage(model: nn.Module) -> bool:
    """Whether two distinct tensors of ``model`` (parameters, buffers) share a storage."""
    seen: set[tuple[str, int]] = set()
    for t in itertools.chain(model.parameters(), model.buffers()):
        if t.device.type == "meta" or t.layout is not torch.strided or not t.numel():
            continue
        ptr = (str(t.device), t.untyped_storage().data_ptr())
        if ptr in seen:
            return True
        seen.add(ptr)
    return False


#: Where a module class must come from for :func:`flops` to share the caller's
#: tensors: their eval-mode forward writes no parameter or buffer.
_TRUSTED_MODULES = ("torch.nn.", "nasnc.")


def _trusted(model: nn.Module) -> bool:
    """Whether every submodule of ``model`` is a torch.nn or nasnc class."""
    return all(type(m).__module__.startswith(_TRUSTED_MODULES) for m in model.modules())


def _private_copy(model: nn.Module, *, share_tensors: bool = False) -> nn.Module:
    """A copy of ``model`` without the caller's module hooks (they must not see our passes).

    Equal to ``copy.deepcopy(model)`` with the hooks cleared (the same
    values, modes and structure; see :func:`_clone_module`). With
    ``share_tensors`` the copy holds the caller's own parameters and buffers:
    only for passes that provably write no tensor (no grad, eval mode).
    """
    memo: dict[int, Any] = {}
    if share_tensors:
        for t in itertools.chain(model.parameters(), model.buffers()):
            memo[id(t)] = t
        work = _clone_module(model, memo)
    elif _shared_storage(model):  # tensors that are views of each other: as deepcopy does
        work = copy.deepcopy(model)
    else:
        work = _clone_module(model, memo)
    for m in work.modules():  # modules copied by deepcopy (custom protocols) kept theirs
        for attr in _MODULE_HOOKS:
            hooks = getattr(m, attr, None)
            if hooks:
                hooks.clear()
    return work


def _working_copy(model: nn.Module) -> nn.Module:
    """A private copy in training mode, without gradients, every weight differentiable."""
    work = _private_copy(model)
    work.train()
    for p in work.parameters():
        p.grad = None
        p.requires_grad_(True)
    return work


def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, _WEIGHTED)]


def _weight(layer: nn.Module) -> torch.Tensor:
    w = layer.weight
    assert isinstance(w, torch.Tensor)
    return w


@contextmanager
def _hooks(handles: list[RemovableHandle]) -> Iterator[list[RemovableHandle]]:
    """Yield a list to fill with hook handles; remove every one of them on exit."""
    try:
        yield handles
    finally:
        for h in handles:
            h.remove()
        handles.clear()


def _strip_batchnorm(model: nn.Module) -> None:
    """Replace every BatchNorm layer of ``model`` (in place) by ``nn.Identity``."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, _BATCHNORM):
                setattr(module, child_name, nn.Identity())


def _loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(images), labels)


# -------------------------------------------------------------- architecture
def params(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Number of trainable parameters (BatchNorm affine and biases included).

    Sign: higher = better (larger NAS-Bench-201 cells are more accurate).
    ``images`` and ``labels`` are unused; the signature matches the table.
    """
    del images, labels
    return float(count_params(model))


def flops(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Multiply-accumulates of one forward pass on one image of ``images``' size.

    Counts convolutions and linear layers (:func:`nasnc.models.count_macs`,
    the benchmark's FLOP convention). Sign: higher = better. Needs square
    images (``H == W``).
    """
    del labels
    # count_macs runs one no-grad pass in eval mode, in which torch.nn and nasnc
    # modules write no tensor: the copy (which keeps the caller's hooks and mode
    # out of it) then shares the tensors. A user module might write a buffer even
    # in eval mode, so a model holding one gets a full copy.
    work = _private_copy(model, share_tensors=_trusted(model))
    return float(count_macs(work, resolution=int(images.shape[-1])))


# ----------------------------------------------------------------- synflow
def synflow(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, bn: bool = False
) -> float:
    """Synaptic flow (Tanaka et al. 2020) as used by Abdelfattah et al.

    On a float64 copy whose parameters and buffers are replaced by their
    absolute values, one all-ones input of ``images``' shape (batch 1) is
    passed forward; the sum of the outputs is back-propagated and the score is
    ``sum_l sum |θ_l ⊙ ∂R/∂θ_l|`` over convolution and linear weights. The
    data is not used, only its shape.

    Parameters
    ----------
    bn : bool, default False
        ``False`` removes every BatchNorm layer first (the reference's
        ``bn=False``); ``True`` keeps them, normalising with the statistics
        of the single all-ones input. (The reference's NAS-Bench-201 model
        drops BN from the stem, cells and last layer but its residual
        reduction blocks keep theirs; ``benchmarks/zero_cost_reproduction.py``
        measures that variant too.)

    Sign: higher = better.
    """
    del labels
    work = _working_copy(model)
    if not bn:
        _strip_batchnorm(work)
    work.double()
    with torch.no_grad():
        for tensor in work.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    ones = torch.ones((1, *images.shape[1:]), dtype=torch.float64, device=images.device)
    work.zero_grad(set_to_none=True)
    torch.sum(work(ones)).backward()
    total = torch.zeros((), dtype=torch.float64, device=images.device)
    for layer in _weighted_layers(work):
        w = _weight(layer)
        if w.grad is not None:
            total += (w.detach() * w.grad).abs().sum()
    return _finite("synflow", float(total))


# ------------------------------------------------- gradient-based (one pass)
def _fisher_hooks(
    layers: Sequence[nn.Module], handles: list[RemovableHandle], acc: dict[int, torch.Tensor]
) -> None:
    """Hooks accumulating the channel Fisher information of each layer's output."""

    def make(index: int) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def forward_hook(_m: nn.Module, _inp: object, out: torch.Tensor) -> None:
            act = out.detach()

            def grad_hook(grad: torch.Tensor) -> None:
                prod = act * grad
                g_nk = prod.sum(dim=tuple(range(2, prod.dim()))) if prod.dim() > 2 else prod
                del_k = 0.5 * g_nk.pow(2).mean(0)
                prev = acc.get(index)
                acc[index] = del_k if prev is None else prev + del_k

            if out.requires_grad:
                out.register_hook(grad_hook)

        return forward_hook

    for i, layer in enumerate(layers):
        handles.append(layer.register_forward_hook(make(i)))


def _gradient_scores(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, which: Sequence[str]
) -> dict[str, float]:
    """snip, grad_norm and fisher from one forward/backward pass of the loss."""
    work = _working_copy(model)
    layers = _weighted_layers(work)
    fisher_acc: dict[int, torch.Tensor] = {}
    with _hooks([]) as handles:
        if "fisher" in which:
            _fisher_hooks(layers, handles, fisher_acc)
        _loss(work, images, labels).backward()
    out: dict[str, float] = {}
    with torch.no_grad():
        zero = torch.zeros((), dtype=torch.float64, device=images.device)
        if "snip" in which:
            total = zero.clone()
            for layer in layers:
                w = _weight(layer)
                if w.grad is not None:
                    total += (w * w.grad).abs().sum().double()
            out["snip"] = _finite("snip", float(total))
        if "grad_norm" in which:
            total = zero.clone()
            for layer in layers:
                w = _weight(layer)
                if w.grad is not None:
                    total += w.grad.norm().double()
            out["grad_norm"] = _finite("grad_norm", float(total))
        if "fisher" in which:
            # The reference broadcasts each channel's value to the channel's weights
            # (weight.shape[1:]) before summing: a channel counts fan-in times.
            total = zero.clone()
            for index, value in fisher_acc.items():
                fan_in = math.prod(_weight(layers[index]).shape[1:])
                total += value.abs().sum().double() * fan_in
            out["fisher"] = _finite("fisher", float(total))
    return out


def snip(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """SNIP saliency (Lee et al. 2019) summed over the network.

    ``sum_l sum |θ_l ⊙ ∂L/∂θ_l|`` for the cross-entropy ``L`` of the batch,
    in training mode. Sign: higher = better.
    """
    return _gradient_scores(model, images, labels, ("snip",))["snip"]


def grad_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Sum over layers of the Euclidean norm of each layer's weight gradient.

    ``sum_l ||∂L/∂θ_l||_2`` (per-layer norms added, not the global norm), as in
    Abdelfattah et al. Sign: higher = better.
    """
    return _gradient_scores(model, images, labels, ("grad_norm",))["grad_norm"]


def fisher(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Channel Fisher information (Turner et al. 2020) summed over the network.

    For every convolution/linear output ``a`` (before BatchNorm) with loss
    gradient ``g``, the per-channel value ``F_k = 0.5 * mean_n (sum_{hw} a ⊙
    g)_{nk}^2``; the score is ``sum_l sum_k F_k * fan_in_l`` (the reference
    spreads each channel's value over the channel's ``fan_in = C_in·kh·kw``
    weights before summing, and so do we). Sign: higher = better (as
    published).
    """
    return _gradient_scores(model, images, labels, ("fisher",))["fisher"]


# ------------------------------------------------------------------- grasp
def grasp(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """GraSP (Wang et al. 2020) summed over the network: ``sum -θ ⊙ (H g)``.

    ``g`` is the loss gradient of the weights, ``H g`` the Hessian-gradient
    product (double back-propagation, temperature 1), both in training
    mode. The minus sign is the reference implementation's, added there
    because accuracy falls with ``θ ⊙ Hg``; so oriented, higher = better
    (Spearman ρ = +0.47 against NAS-Bench-201 CIFAR-10 accuracy over 500
    cells, ``benchmarks/zero_cost_reproduction.py``). About 3x the cost of
    the other gradient proxies.
    """
    work = _working_copy(model)
    layers = _weighted_layers(work)
    weights = [_weight(layer) for layer in layers]
    first = torch.autograd.grad(_loss(work, images, labels), weights, allow_unused=True)
    second = torch.autograd.grad(
        _loss(work, images, labels), weights, create_graph=True, allow_unused=True
    )
    z = torch.zeros((), device=images.device)
    for g, gf in zip(first, second):
        if g is not None and gf is not None:
            z = z + (g.detach() * gf).sum()
    for w in weights:
        w.grad = None
    if z.requires_grad:
        z.backward()
    total = torch.zeros((), dtype=torch.float64, device=images.device)
    with torch.no_grad():
        for w in weights:
            if w.grad is not None:
                total += (-w * w.grad).sum().double()
    return _finite("grasp", float(total))


# --------------------------------------------------------------- jacob_cov
def jacob_cov(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Jacobian covariance score (Mellor et al. 2020, v1), as in Abdelfattah et al.

    ``J`` is the gradient of the summed logits with respect to each input
    image (training mode), flattened per image; ``C = corrcoef(J)`` over
    the batch, with eigenvalues ``λ``; the score is
    ``-sum(log(λ + k) + 1 / (λ + k))`` with ``k = 1e-5``. It is maximal when
    the images' Jacobians are uncorrelated. ``nan`` when a Jacobian is
    constant (e.g. a cell that never reaches its output). Sign: higher =
    better.
    """
    del labels
    work = _working_copy(model)
    for p in work.parameters():  # only the input's gradient is read: skip the weights'
        p.requires_grad_(False)
    x = images.detach().clone().requires_grad_(True)
    y = work(x)
    if y.requires_grad:
        y.backward(torch.ones_like(y))
    grad = x.grad if x.grad is not None else torch.zeros_like(x)  # output ignores the input
    jac = grad.detach().reshape(x.shape[0], -1).double().cpu().numpy()
    with np.errstate(all="ignore"):
        corr = np.corrcoef(jac)
        if not np.all(np.isfinite(corr)):
            return _finite("jacob_cov", math.nan)
        lam = np.linalg.eigvalsh(corr)
        score = -np.sum(np.log(lam + JACOB_COV_EPS) + 1.0 / (lam + JACOB_COV_EPS))
    return _finite("jacob_cov", float(score))


# ------------------------------------------------------------------ naswot
def naswot(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """NASWOT (Mellor et al. 2021): log-determinant of the activation-pattern kernel.

    For each image the binary code ``c`` records which inputs of every
    ``nn.ReLU`` module are positive (functional ``relu`` calls are not
    seen). ``K[i, j]`` counts the units where images ``i`` and ``j`` agree
    (``c_i·c_j + (1-c_i)·(1-c_j)``) and the score is ``log|det K|``, in
    training mode, in float64. Identical images, or no ReLU at all, make
    ``K`` singular: ``-inf``, reported as ``nan``. Sign: higher = better.
    """
    del labels
    work = _working_copy(model)
    n = images.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=images.device)

    def pre_hook(_m: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
        nonlocal kernel
        # agreements c_i.c_j + (1-c_i).(1-c_j) = U - s_i - s_j + 2 c_i.c_j with s = row sums;
        # float32 counts are exact integers below 2**24 units per sample and layer.
        code = (inp[0].detach().reshape(n, -1) > 0).float()
        units = code.shape[1]
        s = code.sum(1, dtype=torch.float64)
        agree = 2.0 * (code @ code.T).double() - s[:, None] - s[None, :] + units
        kernel = kernel + agree

    with _hooks([]) as handles:
        for m in work.modules():
            if isinstance(m, nn.ReLU):
                handles.append(m.register_forward_pre_hook(pre_hook))
        with torch.no_grad():
            work(images)
    _sign, logdet = torch.linalg.slogdet(kernel)
    return _finite("naswot", float(logdet))


# -------------------------------------------------------------------- zico
#: Mini-batches the batch is split into for ZiCo's gradient statistics.
ZICO_SPLITS = 2


def zico(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """ZiCo (Li et al., ICLR 2023): inverse coefficient of variation of the gradients.

    The batch is split into :data:`ZICO_SPLITS` mini-batches (its two halves,
    ``n // 2`` and ``n - n // 2`` images); each gives
    the gradient ``g_b`` of its mean cross-entropy (training mode, gradients
    zeroed between mini-batches, as in the paper and AZ-NAS's NB201 code; the
    ZiCo authors' script accumulates them instead). For each weighted layer,
    over its weights ``θ`` whose gradient varies between mini-batches,
    ``S_l = Σ_θ mean_b |g_b(θ)| / std_b g_b(θ)`` (population std), and the
    score is ``Σ_l log S_l`` over the layers with ``S_l > 0``. A non-finite
    gradient makes the score ``nan``. Needs at least two images per
    mini-batch (a batch of 4 or more). Sign: higher = better.
    """
    n = images.shape[0]
    if n < 2 * ZICO_SPLITS:
        raise ConfigError(
            f"zico needs a batch of at least {2 * ZICO_SPLITS} images ({ZICO_SPLITS} "
            f"mini-batches of 2 or more), but got {n}."
        )
    work = _working_copy(model)
    layers = _weighted_layers(work)
    grads: list[list[torch.Tensor]] = [[] for _ in layers]
    for b in range(ZICO_SPLITS):
        lo, hi = b * n // ZICO_SPLITS, (b + 1) * n // ZICO_SPLITS
        work.zero_grad(set_to_none=True)
        _loss(work, images[lo:hi], labels[lo:hi]).backward()
        for i, layer in enumerate(layers):
            g = _weight(layer).grad
            if g is not None:
                grads[i].append(g.detach().reshape(-1).double())
    total = 0.0
    for per_batch in grads:
        if len(per_batch) < ZICO_SPLITS:  # the layer is off every path to the loss
            continue
        g = torch.stack(per_batch)
        if not bool(torch.isfinite(g).all()):
            return _finite("zico", math.nan)
        std = g.std(dim=0, unbiased=False)
        varies = std > 0
        s = float((g.abs().mean(dim=0)[varies] / std[varies]).sum())
        if s > 0:
            total += math.log(s)
    return _finite("zico", total)


# -------------------------------------------------------------------- meco
def meco(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """MeCo (Jiang et al., NeurIPS 2023): minimum eigenvalues of feature correlations.

    One forward pass of ``images`` (training mode, no gradients). For every
    module of the network (containers and the network itself included, as in
    the authors' code), the output for the **first image** is read as a
    ``channels × positions`` matrix and ``P`` is the Pearson correlation of
    its channels, with undefined entries (a constant channel, a single
    position) set to 0; the score is the sum over modules of ``λ_min(P)``.
    Outputs without a channel axis (the logits) and non-tensor outputs add
    nothing; a one-channel output adds 1 (0 when constant). A non-finite
    feature makes the score ``nan``. Two departures from the authors'
    script, which feeds one random-noise image of 64 × 64 pixels: here the
    input is the batch's first image at the data's resolution, and the whole
    batch is passed, so training-mode BatchNorm normalises that image with
    the batch's statistics. Sign: higher = better.
    """
    del labels
    work = _working_copy(model)
    values: list[float] = []

    def hook(_m: nn.Module, _inp: object, out: object) -> None:
        if not isinstance(out, torch.Tensor) or out.dim() < 3:
            return
        fea = out[0].detach().reshape(out.shape[1], -1).double().cpu().numpy()
        if not np.isfinite(fea).all():
            values.append(math.nan)
            return
        if fea.shape[1] < 2:  # one position: every correlation is undefined, P = 0
            values.append(0.0)
            return
        with np.errstate(all="ignore"):
            corr = np.nan_to_num(np.atleast_2d(np.corrcoef(fea)), nan=0.0)
        values.append(float(np.linalg.eigvalsh(corr)[0]))

    with _hooks([]) as handles:
        for m in work.modules():
            handles.append(m.register_forward_hook(hook))
        with torch.no_grad():
            work(images)
    return _finite("meco", float(sum(values)))


# ----------------------------------------------------------- βeff of the gradient
#: The variant of :func:`beta_eff_grad`: scale-free product, the one of four that added
#: to the free aggregate on both capacitance-study samples (docs/capacitance-study.md).
BETA_EFF_GRAD_VARIANT = ("product", True)
#: Its name as a proxy: ``beta_eff_grad_product_sf``.
BETA_EFF_GRAD = gradient_name(*BETA_EFF_GRAD_VARIANT)


def gradient_beta_eff(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    variants: Sequence[tuple[str, bool]] = VARIANTS,
) -> torch.Tensor:
    """βeff variants of the whole network's coupling graph carrying the loss gradient.

    On a private copy of ``model``: the coupling graph of every conv and linear
    layer through the network (:func:`nasnc.capacitance.coupling_graph`, traced
    in evaluation mode on one zero image of the batch's shape), each kernel's
    strength the summed magnitude of the gradient of the batch's mean
    cross-entropy (training mode, one backward pass) instead of the weight's;
    one value per ``(interaction, normalize)`` variant
    (:func:`nasnc.capacitance.network_beta_eff`, float64). A layer the loss
    does not reach has a zero gradient; NaN when no layer lies on an
    input-to-output path.

    Raises
    ------
    ConfigError
        A network the coupling graph does not model (grouped convolutions, a
        layer called twice); ``Conv1d``/``Conv3d`` layers are not in the graph.
    """
    work = _working_copy(model)
    graph = coupling_graph(work.eval(), torch.zeros_like(images[:1]))
    work.train()
    _loss(work, images, labels).backward()
    grads = [
        torch.zeros_like(w) if w.grad is None else w.grad.detach() for w in graph.weights(work)
    ]
    return network_beta_eff(graph, grads, variants, dtype=torch.float64)


def beta_eff_grad(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Scale-free product βeff of the loss gradient at initialisation (nasnc's own free score).

    :func:`gradient_beta_eff` for the variant :data:`BETA_EFF_GRAD_VARIANT`.
    ``nan`` when no layer lies on an input-to-output path, and ``nan`` with a
    logged warning for a network the coupling graph does not model. Sign:
    higher = better.
    """
    try:
        value = gradient_beta_eff(model, images, labels, (BETA_EFF_GRAD_VARIANT,))
    except ConfigError as exc:
        logger.warning("proxy %r is undefined for this network: %s", BETA_EFF_GRAD, exc)
        return math.nan
    return _finite(BETA_EFF_GRAD, float(value[0]))
