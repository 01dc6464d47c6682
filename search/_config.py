"""The study configuration: ``configs/*.yaml`` into a typed, validated ``SearchConfig``.

A config file is a YAML mapping; every key is optional and shown with its
default (configs/*.yaml are worked examples)::

    study_name: nasnc             # Optuna study name
    storage: null                 # default runs/<study_name>.db (.journal: workers > 1)
    n_trials: 20                  # total trials of the study (a rerun resumes to this count)
    timeout: null                 # seconds after which no new trial starts
    workers: 1                    # worker processes on this machine
    device: auto                  # auto | cpu | cuda | cuda:1 | mps
    data_root: null               # else $NASNC_DATA_DIR
    cache: runs/cache             # HDF5 trajectory cache
    seed: 0
    benchmark: null               # ground truth for the summary: builtin | FILE
    benchmark_dataset: null       # its dataset (default: the proxy dataset's, e.g. cifar10-valid)
    proxies: []                   # baseline proxies stored beside βeff
    threads: null                 # torch threads per worker (null: cores // workers)
    download: false               # fetch CIFAR into data_root when missing
    heartbeat_interval: 60        # seconds between a running trial's heartbeats
    heartbeat_grace: 300          # a RUNNING trial silent this long is stale (any storage)
    sampler: {name: tpe, n_startup_trials: 5, kwargs: {}}
                                  # tpe | random | gp | nsga2 | nsga3 | bruteforce | qmc;
                                  # kwargs go to the Optuna sampler (nasnc_search._samplers)
    pruner: {name: capacitance, percentile: 75, n_startup_trials: 5, n_warmup_steps: 0}
                                  # or median | successive_halving | hyperband (kwargs) | none
    proxy: {...}                  # nasnc.pipeline.ProxyConfig fields
    screen: {size: 0, top_k: 10}  # stage 1: free scores of `size` distinct cells, the
                                  # top_k enqueued (nasnc_search._screen); size 0: no screen
    pick: {weights: {aggregate: 1, beta_eff: 1}}  # the final pick: rank aggregate over
                                  # the trained cells
    objectives: [beta_eff]        # several, e.g. [aggregate, latency]: multi-objective
                                  # (params, flops, latency minimised; the rest maximised)

Unknown keys and bad values raise :class:`~nasnc.ConfigError` naming the key
path (``proxy.epochs``) and the value. CLI options override the file through
:func:`apply_overrides` (``nasnc search --set KEY=VALUE``: :func:`parse_overrides`).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from nasnc._config import DEFAULT_CACHE, SEED_BOUND, from_mapping, to_mapping
from nasnc._errors import ConfigError
from nasnc.analysis import PARETO_COSTS
from nasnc.capacitance import (
    PROBE_WEIGHT_CHANGE_VARIANTS,
    WEIGHT_CHANGE_VARIANTS,
    probe_weight_change_name,
    weight_change_name,
)
from nasnc.pipeline import ProxyConfig
from nasnc.proxies import AGGREGATES

__all__ = [
    "COST_OBJECTIVES",
    "PRUNERS",
    "SAMPLERS",
    "PickConfig",
    "PrunerConfig",
    "SamplerConfig",
    "ScreenConfig",
    "SearchConfig",
    "apply_overrides",
    "load_config",
    "parse_overrides",
]

logger = logging.getLogger(__name__)

_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


#: Samplers by config name: Optuna's samplers that handle categorical parameters.
SAMPLERS: tuple[str, ...] = ("tpe", "random", "gp", "nsga2", "nsga3", "bruteforce", "qmc")


@dataclass(frozen=True)
class SamplerConfig:
    """Optuna sampler by name, seeded by the study seed; ``kwargs`` go to its constructor.

    ``tpe`` (default; ``constant_liar`` on unless ``kwargs`` says otherwise:
    workers anywhere may share the study), ``random``, ``gp``, ``nsga2``,
    ``nsga3``, ``bruteforce`` and ``qmc``. ``n_startup_trials`` applies to
    ``tpe`` and ``gp``. Unknown kwargs are refused naming
    ``sampler.kwargs.<key>`` (checked against the installed Optuna).
    """

    name: Literal["tpe", "random", "gp", "nsga2", "nsga3", "bruteforce", "qmc"] = "tpe"
    n_startup_trials: int = 5
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_startup_trials < 0:
            raise ConfigError(
                f"n_startup_trials must be >= 0, but got n_startup_trials={self.n_startup_trials}"
            )
        if not isinstance(self.kwargs, Mapping):
            raise ConfigError(f"kwargs must be a mapping, but got kwargs={self.kwargs!r}")
        if "seed" in self.kwargs:
            raise ConfigError(
                "kwargs.seed is set from the study's seed; set `seed` at the top level, "
                f"but got kwargs.seed={self.kwargs['seed']!r}"
            )


#: Pruners by config name.
PRUNERS: tuple[str, ...] = (
    "capacitance",
    "median",
    "successive_halving",
    "hyperband",
    "none",
)


@dataclass(frozen=True)
class PrunerConfig:
    """Pruner: ``capacitance`` (CapacitancePruner), Optuna's ``median``,
    ``successive_halving`` or ``hyperband``, or ``none``.

    ``percentile`` .. ``z`` configure ``capacitance`` (and ``median`` its
    startup/warm-up); ``kwargs`` go to Optuna's successive-halving and
    Hyperband pruners (``min_resource``, ``reduction_factor``, ...).
    """

    name: Literal["capacitance", "median", "successive_halving", "hyperband", "none"] = (
        "capacitance"
    )
    #: percentage of peers kept (Optuna's meaning): 75 prunes the bottom 25 %
    percentile: float = 75.0
    #: startup, warm-up and interval: Optuna's PercentilePruner/MedianPruner defaults
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    use_uncertainty: bool = False
    k: int = 1
    z: float = 1.0
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.percentile <= 100:
            raise ConfigError(
                f"percentile must be in [0, 100], but got percentile={self.percentile}"
            )
        for name in ("n_startup_trials", "n_warmup_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, but got {name}={getattr(self, name)}")
        for name in ("interval_steps", "k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, but got {name}={getattr(self, name)}")
        if self.z < 0:
            raise ConfigError(f"z must be >= 0, but got z={self.z}")
        if not isinstance(self.kwargs, Mapping):
            raise ConfigError(f"kwargs must be a mapping, but got kwargs={self.kwargs!r}")
        if self.kwargs and self.name not in ("successive_halving", "hyperband"):
            raise ConfigError(
                f"kwargs apply to successive_halving and hyperband, but got "
                f"kwargs={dict(self.kwargs)!r} with name={self.name!r}"
            )


@dataclass(frozen=True)
class ScreenConfig:
    """Stage 1: free scores at initialisation over a pool of distinct cells.

    ``size`` distinct canonical cells (seeded by ``seed``, default the study
    seed; 0 switches the stage off) are scored with ``scores`` (default: the
    members of the project's ``aggregate``, :data:`nasnc.proxies.AGGREGATES`) on the proxy
    network, ranked by their rank aggregate (:func:`nasnc.proxies.rank_aggregate`,
    ``weights`` per score, default 1 each, negative for lower = better; NaN per
    ``nan``), and the ``top_k`` are enqueued as the study's first trials.
    The CPU configs add ``grad_norm`` at weight −1 (it lowered the regret of
    ``configs/cpu-30min.yaml`` on ten fresh seeds, docs/results.md); the default
    keeps the four members, as −grad_norm was measured only on the CPU proxy network.
    """

    size: int = 0
    top_k: int = 10
    scores: tuple[str, ...] = AGGREGATES["aggregate"]
    weights: dict[str, float] = field(default_factory=dict)
    nan: Literal["worst", "propagate"] = "worst"
    seed: int | None = None

    def __post_init__(self) -> None:
        from nasnc.proxies import PROXIES
        from nasnc.space import NUM_UNIQUE_NONZERO

        if not 0 <= self.size <= NUM_UNIQUE_NONZERO:
            raise ConfigError(
                f"size must be in [0, {NUM_UNIQUE_NONZERO}] (cells of distinct canonical forms "
                f"whose output is not always zero), but got size={self.size}"
            )
        if self.top_k < 1 or (self.size and self.top_k > self.size):
            raise ConfigError(f"top_k must be in [1, size={self.size}], but got top_k={self.top_k}")
        unknown = [s for s in self.scores if s not in PROXIES]
        if not self.scores or unknown:
            raise ConfigError(
                f"scores must name proxies of {', '.join(PROXIES)}, "
                f"but got scores={list(self.scores)!r}"
            )
        _check_distinct("scores", self.scores, "(a weight counts a score more)")
        _check_weights("weights", self.weights, self.scores)
        if self.weights and not any(float(self.weights.get(s, 1.0)) != 0.0 for s in self.scores):
            raise ConfigError(
                f"weights leave no score of scores={list(self.scores)!r} in the aggregate, "
                f"but got weights={self.weights!r}"
            )
        if self.seed is not None and not 0 <= self.seed < SEED_BOUND:
            raise ConfigError(f"seed must be in [0, 2**63) or null, but got seed={self.seed}")


#: The last reading of the whole network's βeff of W - W0 that every proxy run records
#: (``beta_eff_dw_product_sf``, docs/method.md), as a trial score.
DW_SCORE = weight_change_name(*WEIGHT_CHANGE_VARIANTS[0])
#: The last reading of the probe's βeff of its own W - W0 that every proxy run
#: records (``beta_eff_probe_dw_chain_sf``, docs/method.md), as a trial score.
PROBE_DW_SCORE = probe_weight_change_name(*PROBE_WEIGHT_CHANGE_VARIANTS[0])
#: Trial scores that are the last reading of a streamed trajectory column (named
#: as the column); as an objective, also what a trial reports to the pruner.
READING_SCORES: tuple[str, ...] = (DW_SCORE, PROBE_DW_SCORE)

#: Names a pick or an objective can use beside the proxies (trial user attributes).
TRIAL_SCORES: tuple[str, ...] = (
    "beta_eff",
    "beta_eff_std",
    "proxy_valid_acc",
    "aggregate",
    *READING_SCORES,
)


def _check_distinct(where: str, names: tuple[str, ...], hint: str = "") -> None:
    """Refuse a name listed twice, naming it (an aggregate would count it twice)."""
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        listed = ", ".join(map(repr, twice))
        raise ConfigError(
            f"{where} lists {listed} more than once{' ' + hint if hint else ''}, "
            f"but got {where}={list(names)!r}"
        )


def _check_weights(where: str, weights: Any, known: tuple[str, ...]) -> None:
    if not isinstance(weights, Mapping):
        raise ConfigError(f"{where} must be a mapping of score -> weight, but got {weights!r}")
    for name, w in weights.items():
        if name not in known:
            raise ConfigError(
                f"{where}.{name}: unknown score; known: {', '.join(known)}, but got {name!r}"
            )
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            raise ConfigError(f"{where}.{name} must be a finite number, but got {w!r}")


@dataclass(frozen=True)
class PickConfig:
    """The final pick: a rank aggregate of named scores over the trained shortlist.

    The default follows the measurements (docs/capacitance-study.md, "Sample
    E"): the free aggregate ranks unseen cells far better than βeff or the
    accuracy of the CPU proxy, but βeff after the default 8-epoch proxy adds
    to it on three disjoint 150-cell samples (aggregate + βeff: Kendall τ
    +0.650 -> +0.694, +0.640 -> +0.696, +0.680 -> +0.728; rules fixed before
    the runs), so the default picks by ``aggregate`` and ``beta_eff`` with
    weight 1 each. Configs that train the shortlist at a real budget may
    weigh ``proxy_valid_acc`` in instead.
    Candidates are completed trials, and pruned ones when every weighted
    score is known before training (the aggregate, free proxies), so a
    pruner cannot hide a cell the pick would choose.
    """

    weights: dict[str, float] = field(default_factory=lambda: {"aggregate": 1.0, "beta_eff": 1.0})
    nan: Literal["worst", "propagate"] = "worst"

    def __post_init__(self) -> None:
        from nasnc.proxies import PROXIES

        _check_weights("weights", self.weights, (*TRIAL_SCORES, *PROXIES))
        if not any(float(w) != 0.0 for w in self.weights.values()):
            raise ConfigError(
                f"weights need at least one non-zero weight, but got weights={self.weights!r}"
            )


#: Seconds between a running trial's heartbeats, and without one before it is failed
#: (``heartbeat_interval``, ``heartbeat_grace``; search/_storage.py).
HEARTBEAT_INTERVAL_S = 60
HEARTBEAT_GRACE_S = 300

#: Objectives minimised by default (costs); every other objective is maximised. As
#: proxies the same three read "higher = better" (raw size); as objectives they are costs.
#: ``latency`` is measured on the study's machine (nasnc.proxies._latency). The same
#: names as a Pareto front's costs: defined once, in the core.
COST_OBJECTIVES: tuple[str, ...] = PARETO_COSTS


@dataclass(frozen=True)
class SearchConfig:
    """Everything ``nasnc search`` needs; see the module docstring for the file layout."""

    study_name: str = "nasnc"
    storage: str | None = None
    n_trials: int = 20
    workers: int = 1
    timeout: float | None = None
    device: str = "auto"
    data_root: str | None = None
    cache: str = DEFAULT_CACHE
    seed: int = 0
    benchmark: str | None = None
    benchmark_dataset: str | None = None
    proxies: tuple[str, ...] = ()
    threads: int | None = None
    download: bool = False
    heartbeat_interval: int = HEARTBEAT_INTERVAL_S
    heartbeat_grace: int = HEARTBEAT_GRACE_S
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    pick: PickConfig = field(default_factory=PickConfig)
    objectives: tuple[str, ...] = ("beta_eff",)

    @property
    def trial_proxies(self) -> tuple[str, ...]:
        """Proxies each trial computes: ``proxies`` plus those ``pick.weights`` names
        (the objectives' are added by the trial stage)."""
        from nasnc.proxies import PROXIES

        named = [n for n in self.pick.weights if n in PROXIES and n not in self.proxies]
        return (*self.proxies, *named)

    def __post_init__(self) -> None:
        if not _STUDY_NAME.match(self.study_name):
            raise ConfigError(
                "study_name must be 1-128 characters of letters, digits, '_', '.', '-', "
                f"but got study_name={self.study_name!r}"
            )
        if self.n_trials < 1:
            raise ConfigError(f"n_trials must be >= 1, but got n_trials={self.n_trials}")
        if not 0 <= self.seed < SEED_BOUND:
            raise ConfigError(f"seed must be in [0, 2**63), but got seed={self.seed}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, but got workers={self.workers}")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"timeout must be positive, but got timeout={self.timeout}")
        if not re.match(r"^(auto|cpu|mps|cuda(:\d+)?)$", self.device):
            raise ConfigError(
                f"device must be auto, cpu, cuda, cuda:N or mps, but got device={self.device!r}"
            )
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1 or null, but got threads={self.threads}")
        from nasnc.proxies import AGGREGATES, PROXIES

        if self.proxies:
            unknown = [p for p in self.proxies if p not in PROXIES and p not in AGGREGATES]
            if unknown:
                raise ConfigError(
                    f"proxies: unknown proxy {unknown[0]!r}; known: "
                    f"{', '.join([*PROXIES, *AGGREGATES])}"
                )
            _check_distinct("proxies", self.proxies)
        names = (*TRIAL_SCORES, *PROXIES)
        bad = [o for o in self.objectives if o not in names]
        if not self.objectives or bad or len(set(self.objectives)) != len(self.objectives):
            raise ConfigError(
                f"objectives must list distinct names of {', '.join(names)}, "
                f"but got objectives={list(self.objectives)!r}"
            )
        if "aggregate" in self.objectives and not self.screen.size:
            raise ConfigError(
                "objectives: 'aggregate' is a cell's rank within the screened pool, and "
                "screen.size 0 screens none; set screen.size or choose another objective, "
                f"but got objectives={list(self.objectives)!r} with screen.size=0"
            )
        if self.pruner.use_uncertainty and list(self.objectives) != ["beta_eff"]:
            raise ConfigError(
                "pruner.use_uncertainty widens each reported value by the standard deviation "
                "of the βeff estimate, so it needs objectives=['beta_eff'] (another objective "
                "has other units; several are not pruned), but got "
                f"objectives={list(self.objectives)!r}"
            )
        if self.sampler.name == "nsga3" and len(self.objectives) < 2:
            raise ConfigError(
                "sampler.name nsga3 is for several objectives, but got "
                f"objectives={list(self.objectives)!r}"
            )
        if self.benchmark_dataset is not None:
            from nasnc.bench import Dataset, missing_reason

            known = [d.value for d in Dataset]
            if self.benchmark_dataset not in known:
                raise ConfigError(
                    f"benchmark_dataset must be one of {', '.join(known)}, "
                    f"but got benchmark_dataset={self.benchmark_dataset!r}"
                )
            # trials are scored against validation accuracy: one the benchmark never
            # recorded would leave every trial's true_acc empty, found out at the end
            why = missing_reason(self.benchmark_dataset, "valid")
            if why:
                raise ConfigError(
                    f"benchmark_dataset={self.benchmark_dataset!r} has no validation accuracy: "
                    f"{why}"
                )
        if self.heartbeat_interval < 1 or self.heartbeat_grace <= self.heartbeat_interval:
            raise ConfigError(
                "need heartbeat_interval >= 1 and heartbeat_grace > heartbeat_interval, but got "
                f"heartbeat_interval={self.heartbeat_interval}, "
                f"heartbeat_grace={self.heartbeat_grace}"
            )

    @property
    def storage_url(self) -> str:
        """The storage to use: explicit, else the study's default file.

        That file is ``runs/<study_name>.db`` (SQLite) for one worker and
        ``runs/<study_name>.journal`` for several, unless exactly one of the
        two exists already: a rerun with another worker count resumes the
        study it started, rather than a new empty one beside it.
        """
        if self.storage:
            return self.storage
        db, journal = (
            Path("runs", f"{self.study_name}.db"),
            Path("runs", f"{self.study_name}.journal"),
        )
        if db.is_file() != journal.is_file():
            return f"sqlite:///{db}" if db.is_file() else f"journal:{journal}"
        return f"journal:{journal}" if self.workers > 1 else f"sqlite:///{db}"

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)


def read_yaml(path: Path) -> Any:
    """The YAML document of a config file; errors name the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if data is None:
        raise ConfigError(f"{path} is empty (no keys); write {{}} in it to take every default")
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (YAML's
    spec forbids it; PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 (PyYAML) reads 1e-3 and 1.0e5 as strings (it wants a dot and a signed
# exponent); YAML 1.2 and every user read them as numbers: weights are checked as
# numbers, so pick.weights={beta_eff: 1e-1} would be refused as "not a number".
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_config(path: str | Path) -> SearchConfig:
    """Read and validate a YAML config file; errors name the file and the key."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path} must hold a mapping of keys, but holds {type(data).__name__}")
    try:
        return from_mapping(SearchConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def apply_overrides(
    config: SearchConfig, overrides: Mapping[str, Any], *, keep_none: bool = False
) -> SearchConfig:
    """A copy with ``overrides`` applied (dotted keys reach sections).

    A None value means "not given" (a command-line flag left out) and is
    skipped, unless ``keep_none``: then it sets the key to None (``--set
    resolution=null``), and a key that cannot be None is refused by name.

    A mapping replaces the config's mapping whole; the keys that drops are
    logged as a warning (``screen.weights={naswot: 2}`` on a config weighing
    ``grad_norm: -1`` turns grad_norm back to higher-is-better).
    """
    data = config.to_dict()
    for key, value in overrides.items():
        if value is None and not keep_none:
            continue
        *sections, leaf = key.split(".")
        target = data
        for depth, section in enumerate(sections):
            inner = target.get(section)
            if not isinstance(inner, dict):
                where = ".".join(sections[:depth]) or "the config"
                known = ", ".join(k for k, v in target.items() if isinstance(v, dict))
                raise ConfigError(
                    f"{key}: {section!r} is not a section of {where} "
                    + (f"(sections: {known})" if known else f"({where} has no sections)")
                )
            target = inner
        before = target.get(leaf)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            dropped = {k: v for k, v in before.items() if k not in value}
            if dropped:
                logger.warning(
                    "%s replaces the config's mapping whole and drops %s "
                    "(name them in the new mapping to keep them)",
                    key,
                    ", ".join(f"{k}: {v}" for k, v in dropped.items()),
                )
        target[leaf] = value
    return from_mapping(SearchConfig, data)


def parse_overrides(
    pairs: Iterable[str], *, form: str = "KEY=VALUE, e.g. screen.top_k=16"
) -> dict[str, Any]:
    """``KEY=VALUE`` strings as :func:`apply_overrides` takes them: KEY dotted into
    sections (``screen.top_k``), VALUE read as YAML (``{grad_norm: -1}``, ``null``).

    >>> parse_overrides(["screen.top_k=16", "pick.weights={aggregate: 1}"])
    {'screen.top_k': 16, 'pick.weights': {'aggregate': 1}}

    The value is read as a config file's are (a key twice in one mapping is
    refused); an empty one is refused too (``null`` unsets a key). ``form``
    is what the error for a pair without ``=`` says an override looks like.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"an override is {form}, but got {pair!r}")
        if not text.strip():
            raise ConfigError(f"override {pair!r} has no value (null unsets a key)")
        try:
            out[key] = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "not valid YAML"
            raise ConfigError(
                f"override {pair!r}: the value is not valid YAML: {problem}"
            ) from None
    return out
