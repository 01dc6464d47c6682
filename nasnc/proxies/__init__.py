"""Baseline proxies, measured on the same network and batch as βeff.

Every score is oriented so that higher = better predicted accuracy;
non-finite scores are reported as ``nan`` (with a logged warning).
:data:`PROXIES` maps each name to its function and :func:`compute_proxies`
computes several at once; :func:`tse` scores a training run from its losses.
``latency`` (:mod:`nasnc.proxies._latency`) is measured, not computed: ms per
batch on the machine at hand, higher = better as a proxy like ``params`` and
``flops``, minimised as a cost; it depends on the machine.
:data:`AGGREGATES` names rank aggregates (``aggregate``: NASWOT, synflow,
jacob_cov, FLOPs), which are computed over a pool of cells by
:func:`rank_aggregate`, never for one network alone.
"""

from nasnc.proxies._aggregate import (
    AGGREGATES,
    aggregate_against,
    expand_proxies,
    log_rank,
    rank_aggregate,
)
from nasnc.proxies._compute import PROXIES, ProxyFn, compute_proxies, tse
from nasnc.proxies._latency import LATENCY_REPEATS, LATENCY_WARMUP, latency
from nasnc.proxies._zero_cost import (
    BETA_EFF_GRAD,
    JACOB_COV_EPS,
    beta_eff_grad,
    fisher,
    flops,
    grad_norm,
    gradient_beta_eff,
    grasp,
    jacob_cov,
    meco,
    naswot,
    params,
    snip,
    synflow,
    zico,
)

__all__ = [
    "AGGREGATES",
    "BETA_EFF_GRAD",
    "JACOB_COV_EPS",
    "LATENCY_REPEATS",
    "LATENCY_WARMUP",
    "PROXIES",
    "ProxyFn",
    "aggregate_against",
    "beta_eff_grad",
    "compute_proxies",
    "expand_proxies",
    "fisher",
    "flops",
    "grad_norm",
    "gradient_beta_eff",
    "grasp",
    "jacob_cov",
    "latency",
    "log_rank",
    "meco",
    "naswot",
    "params",
    "rank_aggregate",
    "snip",
    "synflow",
    "tse",
    "zico",
]
