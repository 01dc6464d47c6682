"""Neural capacitance: βeff of the line graph of a dense chain, and its probe."""

from nasnc.capacitance._probe import CapacitanceProbe, dense_chain

__all__ = ["CapacitanceProbe", "dense_chain"]
