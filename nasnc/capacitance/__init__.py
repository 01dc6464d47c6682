"""Neural capacitance: βeff of the line graph of a dense chain, and its probe."""

from nasnc.capacitance._betaeff import (
    INTERACTIONS,
    VARIANTS,
    beta_eff,
    beta_eff_variants,
    line_graph,
    variant_name,
)
from nasnc.capacitance._probe import CapacitanceProbe, dense_chain

__all__ = [
    "INTERACTIONS",
    "VARIANTS",
    "CapacitanceProbe",
    "beta_eff",
    "beta_eff_variants",
    "dense_chain",
    "line_graph",
    "variant_name",
]
