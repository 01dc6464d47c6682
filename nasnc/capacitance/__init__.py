r"""Neural capacitance: βeff of the line graph of a dense chain, streamed during training.

The method (docs/method.md; after Jiang et al., Nat.
Commun. 2024). A capacitance probe (:class:`CapacitanceProbe`, a small MLP
between the pooled features and the logits) gives a chain of dense layers.
Its line graph G_B has one node per weight; a weight ``e = (i -> j)`` of layer
``l`` is adjacent to the weights of layer ``l-1`` entering ``i`` and of layer
``l+1`` leaving ``j``. With interaction strengths

* ``chain``:   ``P[e, f] = |w_f|``,
* ``product``: ``P[e, f] = |w_e|·|w_f|``,

optionally on each layer's ``|W|`` divided by its mean (``normalize``, the
scale-free ``_sf`` variants), the effective coupling is

    βeff = 1ᵀPP1 / 1ᵀP1 = Σ_e s_out(e)·s_in(e) / Σ_e s_in(e),  s_in = P1, s_out = Pᵀ1.

:func:`beta_eff` computes it in closed form from row and column sums of the
``|W_l|`` of neighbouring layers (O(#weights), on the device, no host sync);
:func:`line_graph` builds ``P`` explicitly for tests and small nets.
:func:`network_beta_eff` does the same over the whole network's coupling
graph (every conv/linear layer, traced by :func:`coupling_graph`);
:class:`WeightChangeObserver` streams it for the weight change ``W - W0``.
:class:`SnapshotObserver` keeps float16 weight snapshots at report points and
:func:`snapshot_beta_eff` recomputes any variant from them.

Streaming: :class:`CapacitanceObserver` records βeff every ``k`` optimiser
steps into an on-device buffer (a ``nasnc.train`` observer, or a hook on any
optimiser). Estimation: :class:`CapacitanceEstimator` fits Bayesian ridge
regression over ``1, exp(-t/τ_k)`` of training progress and returns the
converged βeff with its std; :class:`CapacitanceCalibrator` maps βeff features
to final accuracy with uncertainty.

Whether higher βeff means better final accuracy is the hypothesis under
test, not an assumption of this package.
"""

from nasnc.capacitance._betaeff import (
    INTERACTIONS,
    VARIANTS,
    beta_eff,
    beta_eff_variants,
    gradient_name,
    line_graph,
    probe_weight_change_name,
    variant_name,
    weight_change_name,
)
from nasnc.capacitance._estimator import (
    CapacitanceCalibrator,
    CapacitanceEstimator,
    trajectory_features,
)
from nasnc.capacitance._network import (
    WEIGHT_CHANGE_VARIANTS,
    CouplingGraph,
    WeightChangeObserver,
    coupling_graph,
    coupling_matrices,
    network_beta_eff,
    network_line_graph,
)
from nasnc.capacitance._observer import CapacitanceObserver
from nasnc.capacitance._probe import CapacitanceProbe, dense_chain
from nasnc.capacitance._probe_change import (
    PROBE_WEIGHT_CHANGE_VARIANTS,
    ProbeWeightChangeObserver,
)
from nasnc.capacitance._snapshots import (
    SNAPSHOT_VARIANTS,
    SnapshotObserver,
    network_name,
    snapshot_beta_eff,
)

__all__ = [
    "INTERACTIONS",
    "PROBE_WEIGHT_CHANGE_VARIANTS",
    "SNAPSHOT_VARIANTS",
    "VARIANTS",
    "WEIGHT_CHANGE_VARIANTS",
    "CapacitanceCalibrator",
    "CapacitanceEstimator",
    "CapacitanceObserver",
    "CapacitanceProbe",
    "CouplingGraph",
    "ProbeWeightChangeObserver",
    "SnapshotObserver",
    "WeightChangeObserver",
    "beta_eff",
    "beta_eff_variants",
    "coupling_graph",
    "coupling_matrices",
    "dense_chain",
    "gradient_name",
    "line_graph",
    "network_beta_eff",
    "network_line_graph",
    "network_name",
    "probe_weight_change_name",
    "snapshot_beta_eff",
    "trajectory_features",
    "variant_name",
    "weight_change_name",
]
