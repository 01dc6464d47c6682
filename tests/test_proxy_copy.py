"""The proxies' private model copy: equal to a deep copy, and the caller's model untouched."""

from __future__ import annotations

import copy
import math
from typing import Any
from unittest import mock

import pytest
import torch
from torch import nn

from nasnc.models import build_network
from nasnc.proxies import _zero_cost, compute_proxies
from nasnc.space import sample_archs

#: The zero-cost proxies (not the machine-measured ones).
ZERO_COST = ("params", "flops", "synflow", "snip", "grad_norm", "fisher", "grasp", "jacob_cov")
SCREEN = ("naswot", "synflow", "jacob_cov", "flops")


def deepcopy_private_copy(model: nn.Module, *, share_tensors: bool = False) -> nn.Module:
    """The proxies' copy before the fast clone: ``copy.deepcopy`` and the hooks cleared."""
    del share_tensors
    work = copy.deepcopy(model)
    for m in work.modules():
        for attr in _zero_cost._MODULE_HOOKS:
            getattr(m, attr).clear()
    return work


def build(arch: Any, seed: int = 0) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_network(arch, channels=4, cells_per_stage=1, probe=(16,), probe_seed=seed)


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def batch(n: int = 8, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("cell", range(4))
def test_scores_are_bit_identical_to_the_deepcopy_path(
    cell: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    arch = sample_archs(4, seed=3, unique=True, exclude_zero=True)[cell]
    x, y = batch()
    names = [*SCREEN, *(n for n in ZERO_COST if n not in SCREEN)]
    fast = compute_proxies(build(arch), x, y, names=names, seed=5)
    monkeypatch.setattr(_zero_cost, "_private_copy", deepcopy_private_copy)
    slow = compute_proxies(build(arch), x, y, names=names, seed=5)
    assert list(fast) == list(slow)
    assert all(same(fast[n], slow[n]) for n in names), (fast, slow)


class Tied(nn.Module):
    """Weight tying, a plain attribute list, a non-persistent buffer and an eval-mode BN."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.embed = nn.Linear(4, 4, bias=False)
        self.head = nn.Linear(4, 4, bias=False)
        self.head.weight = self.embed.weight
        self.register_buffer("scale", torch.tensor(2.0), persistent=False)
        self.trace: list[int] = [1, 2]
        self.extra = {"k": [3]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.bn(self.conv(x))).mean((2, 3))
        return self.head(self.embed(h)) * self.scale


class Custom(nn.Module):
    """A module with its own copy protocol: the clone falls back to deepcopy for it."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.copied = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> Custom:
        new = Custom()
        new.lin.load_state_dict(self.lin.state_dict())
        new.copied = self.copied + 1
        memo[id(self)] = new
        return new


def test_the_hook_dicts_a_copy_empties_are_every_forward_and_backward_hook_dict() -> None:
    """The fast copy empties torch's private hook dicts by name: a dict a later torch
    adds would be copied, and the caller's hooks would fire inside the proxies."""
    from nasnc.proxies._zero_cost import _MODULE_HOOKS

    installed = {
        k for k in nn.Module().__dict__ if "hook" in k and ("forward" in k or "backward" in k)
    }
    installed.discard("_is_full_backward_hook")  # a flag, not a dict of hooks
    assert installed == set(_MODULE_HOOKS)


def test_clone_matches_deepcopy_structure_sharing_and_values() -> None:
    torch.manual_seed(0)
    net = Tied()
    net.conv.register_forward_hook(lambda *_: None)
    net.eval()
    clone = _zero_cost._private_copy(net)
    ref = copy.deepcopy(net)
    assert [type(m) for m in clone.modules()] == [type(m) for m in ref.modules()]
    assert [m.training for m in clone.modules()] == [m.training for m in ref.modules()]
    for (k, a), (k2, b) in zip(clone.state_dict().items(), ref.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b) and a.dtype == b.dtype
    assert torch.equal(clone.scale, net.scale) and clone.scale is not net.scale
    assert isinstance(clone.head.weight, nn.Parameter)
    assert clone.head.weight is clone.embed.weight  # tying kept, as deepcopy keeps it
    assert clone.trace == [1, 2] and clone.trace is not net.trace
    assert clone.extra == {"k": [3]} and clone.extra["k"] is not net.extra["k"]
    assert not any(p is q for p in clone.parameters() for q in net.parameters())
    assert len(net.conv._forward_hooks) == 1 and len(clone.conv._forward_hooks) == 0
    x = torch.randn(2, 3, 5, 5)
    assert torch.equal(clone(x), ref(x))

    holder = nn.Sequential(Custom(), nn.ReLU())
    holder[0].lin.register_forward_hook(lambda *_: None)
    copied = _zero_cost._private_copy(holder)
    assert copied[0].copied == 1  # its __deepcopy__ ran
    assert not copied[0].lin._forward_hooks  # and the hooks of what it copied are dropped


def test_flops_shares_tensors_but_writes_nothing() -> None:
    net = build(sample_archs(1, seed=0, unique=True, exclude_zero=True)[0])
    shared = _zero_cost._private_copy(net, share_tensors=True)
    assert all(p is q for p, q in zip(shared.parameters(), net.parameters(), strict=True))
    assert all(p is q for p, q in zip(shared.buffers(), net.buffers(), strict=True))
    versions = [t._version for t in (*net.parameters(), *net.buffers())]
    x, y = batch()
    compute_proxies(net, x, y, names=["flops"])
    assert [t._version for t in (*net.parameters(), *net.buffers())] == versions


def test_callers_grads_buffers_hooks_and_mode_untouched() -> None:
    net = build(sample_archs(1, seed=1, unique=True, exclude_zero=True)[0])
    x, y = batch()
    # a caller mid-training: grads present, BN statistics moved, evaluation mode
    nn.functional.cross_entropy(net(x), y).backward()
    net.eval()
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    state = {k: v.clone() for k, v in net.state_dict().items()}
    calls: list[str] = []
    net.register_forward_pre_hook(lambda *_: calls.append("pre"))
    net.classifier.register_forward_hook(lambda *_: calls.append("fwd"))
    net.classifier.register_full_backward_hook(lambda *_: calls.append("bwd"))
    for p in net.parameters():
        p.register_hook(lambda g: calls.append("tensor") or g)
    compute_proxies(net, x, y, names=[*SCREEN, *ZERO_COST])
    assert calls == []
    assert {n for n, p in net.named_parameters() if p.grad is not None} == set(grads)
    assert all(torch.equal(p.grad, grads[n]) for n, p in net.named_parameters() if n in grads)
    after = net.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)  # BN running stats too
    assert not any(m.training for m in net.modules())
    assert len(net._forward_pre_hooks) == 1 and len(net.classifier._forward_hooks) == 1


@pytest.mark.parametrize("cell", range(3))
def test_jacob_cov_without_weight_gradients_is_bit_identical(cell: int) -> None:
    """jacob_cov reads the input's gradient only; differentiable weights change no bit."""
    arch = sample_archs(3, seed=11, unique=True, exclude_zero=True)[cell]
    net = build(arch)
    x, y = batch(16)
    real = nn.Parameter.requires_grad_

    def always(self: nn.Parameter, requires_grad: bool = True) -> nn.Parameter:
        return real(self, True)

    fast = _zero_cost.jacob_cov(net, x, y)
    with mock.patch.object(nn.Parameter, "requires_grad_", always):
        slow = _zero_cost.jacob_cov(net, x, y)
    assert same(fast, slow), (fast, slow)


class Views(nn.Module):
    """Buffers that are views of one storage, as deepcopy keeps them."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("whole", torch.arange(6.0))
        self.register_buffer("tail", self.whole[3:])  # a view into a larger storage
        self.register_buffer("grid", self.whole.view(2, 3))  # the same storage, whole
        self.lin = nn.Linear(3, 2)


@pytest.mark.parametrize("only", [None, "tail", "grid"])
def test_buffers_sharing_storage_stay_shared_as_deepcopy_keeps_them(only: str | None) -> None:
    net = Views()
    if only is not None:  # one view at a time: each case alone must be caught
        del net._buffers["grid" if only == "tail" else "tail"]
    clone = _zero_cost._private_copy(net)
    ref = copy.deepcopy(net)
    for name in [n for n in ("tail", "grid") if n in net._buffers]:
        a, b = getattr(clone, name), getattr(ref, name)
        assert torch.equal(a, b) and a.data_ptr() != getattr(net, name).data_ptr()
        assert a.untyped_storage().data_ptr() == clone.whole.untyped_storage().data_ptr()
        assert b.untyped_storage().data_ptr() == ref.whole.untyped_storage().data_ptr()
    clone.whole.add_(1)  # one storage: the views see it, as in deepcopy's copy
    for name in [n for n in ("tail", "grid") if n in net._buffers]:
        assert torch.equal(getattr(clone, name).flatten(), getattr(net, name).flatten() + 1)


class Counter(nn.Module):
    """A user module that writes a buffer even in evaluation mode."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(x).mean((2, 3))


def test_flops_copies_a_model_with_user_modules() -> None:
    net = Counter()
    x, y = torch.randn(2, 3, 8, 8), torch.tensor([0, 1])
    scores = compute_proxies(net, x, y, names=["flops"])
    assert scores["flops"] > 0
    assert net.calls.item() == 0  # the caller's buffer is not written
    assert not _zero_cost._trusted(net)
    assert _zero_cost._trusted(build(sample_archs(1, seed=0, unique=True, exclude_zero=True)[0]))
