"""The NAS-Bench-201 network builder (with an optional capacitance probe head)."""

from nasnc.models._network import (
    Cell,
    Network,
    arch_params,
    build_network,
    count_macs,
    count_params,
)

__all__ = ["Cell", "Network", "arch_params", "build_network", "count_macs", "count_params"]
