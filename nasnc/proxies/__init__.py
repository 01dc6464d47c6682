"""Baseline proxies, measured on the same network and batch as βeff.

Every score is oriented so that higher = better predicted accuracy;
non-finite scores are reported as ``nan`` (with a logged warning).
:data:`PROXIES` maps each name to its function and :func:`compute_proxies`
computes several at once; :func:`tse` scores a training run from its losses.
"""

from nasnc.proxies._compute import PROXIES, ProxyFn, compute_proxies, tse
from nasnc.proxies._zero_cost import (
    JACOB_COV_EPS,
    fisher,
    flops,
    grad_norm,
    grasp,
    jacob_cov,
    naswot,
    params,
    snip,
    synflow,
)

__all__ = [
    "JACOB_COV_EPS",
    "PROXIES",
    "ProxyFn",
    "compute_proxies",
    "fisher",
    "flops",
    "grad_norm",
    "grasp",
    "jacob_cov",
    "naswot",
    "params",
    "snip",
    "synflow",
    "tse",
]
