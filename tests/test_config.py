from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nasnc import ConfigError
from nasnc._config import check_int, is_real
from nasnc.pipeline import ProxyConfig
from nasnc.proxies import AGGREGATES
from nasnc_search._config import (
    ScreenConfig,
    SearchConfig,
    apply_overrides,
    load_config,
    parse_overrides,
)
from nasnc_search._screen import pool_archs

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_shipped_configs_load(name: str) -> None:
    config = load_config(REPO / "configs" / name)
    assert config.n_trials >= 1
    assert config.proxy.epochs > 0
    if config.screen.size:  # the pool draws (a size the space cannot fill failed here)
        pool = pool_archs(config)
        assert len({a.canonical() for a in pool}) == config.screen.size


def test_the_cpu_configs_screen_with_negated_grad_norm_and_the_rest_with_the_four() -> None:
    """The screen's change was measured on the CPU proxy network only
    (docs/results.md, R7/R8): the GPU configs and ScreenConfig's default keep
    the four members of the project's aggregate."""
    four = tuple(AGGREGATES["aggregate"])
    for name in ("cpu-30min.yaml", "quickstart.yaml"):
        screen = load_config(REPO / "configs" / name).screen
        assert screen.scores == (*four, "grad_norm"), name
        assert screen.weights == {"grad_norm": -1}, name
    for path in sorted((REPO / "configs").glob("nb201-*.yaml")):
        screen = load_config(path).screen
        assert (screen.scores, screen.weights) == (four, {}), path.name
    assert (ScreenConfig().scores, ScreenConfig().weights) == (four, {})


def test_defaults_are_the_measured_cpu_proxy() -> None:
    p = ProxyConfig()
    assert (p.resolution, p.channels, p.cells_per_stage, p.train_subset, p.lr) == (
        16,
        8,
        1,
        10000,
        0.1,
    )
    assert p.epochs >= 8


def test_the_default_storage_resumes_the_file_a_study_started_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert SearchConfig().storage_url == "sqlite:///runs/nasnc.db"
    assert SearchConfig(workers=2).storage_url == "journal:runs/nasnc.journal"
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "nasnc.db").touch()  # started with one worker
    assert SearchConfig(workers=2).storage_url == "sqlite:///runs/nasnc.db"
    assert SearchConfig(workers=2, study_name="other").storage_url == "journal:runs/other.journal"
    (tmp_path / "runs" / "nasnc.db").rename(tmp_path / "runs" / "nasnc.journal")
    assert SearchConfig().storage_url == "journal:runs/nasnc.journal"
    (tmp_path / "runs" / "nasnc.db").touch()  # both: each worker count keeps its own
    assert SearchConfig().storage_url == "sqlite:///runs/nasnc.db"
    assert SearchConfig(storage="journal:x.journal").storage_url == "journal:x.journal"


@pytest.mark.parametrize(
    ("yaml_text", "culprits"),
    [
        ("n_trial: 3\n", ["n_trial", "n_trials"]),
        ("proxy:\n  epocs: 3\n", ["proxy.epocs", "epochs"]),
        ("proxy:\n  epochs: -1\n", ["proxy.epochs", "-1"]),
        ("proxy:\n  dataset: mnist\n", ["proxy.dataset", "mnist"]),
        ("proxy:\n  probe: [0, 4]\n", ["proxy.probe", "[0, 4]"]),
        ("proxy:\n  normalize: maybe\n", ["proxy.normalize", "maybe"]),
        ("pruner:\n  name: hyperbandit\n", ["pruner.name", "hyperbandit"]),
        ("pruner:\n  percentile: 120\n", ["pruner", "percentile=120"]),
        ("workers: 0\n", ["workers=0"]),
        ("seed: -1\n", ["seed=-1"]),
        ("screen:\n  size: 8\n  top_k: 2\n  seed: -3\n", ["screen", "seed=-3"]),
        ("seed: 1\n# caf\xe9\n", ["not UTF-8"]),
        ("n_trials: many\n", ["n_trials", "many"]),
        ("device: gpu\n", ["device", "gpu"]),
        ("study_name: 'a b'\n", ["study_name", "a b"]),
        ("objectives: [aggregate]\n", ["objectives", "'aggregate'", "screen.size"]),
        ("objectives: [aggregate, params]\n", ["objectives", "'aggregate'", "screen.size"]),
        (
            "objectives: [proxy_valid_acc]\npruner:\n  use_uncertainty: true\n",
            ["pruner.use_uncertainty", "objectives", "'proxy_valid_acc'"],
        ),
        (
            "objectives: [beta_eff, params]\npruner:\n  use_uncertainty: true\n",
            ["pruner.use_uncertainty", "objectives", "'params'"],
        ),
        ("- just\n- a list\n", ["mapping"]),
        ("a: [unclosed\n", ["not valid YAML"]),
    ],
)
def test_bad_config_names_key_and_value(
    tmp_path: Path, yaml_text: str, culprits: list[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(yaml_text.encode("latin-1"))  # one case is not UTF-8
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    for culprit in culprits:
        assert culprit in message


def test_the_aggregate_objective_is_accepted_with_a_screen(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("objectives: [aggregate, params]\nscreen:\n  size: 8\n  top_k: 2\n")
    assert load_config(path).objectives == ("aggregate", "params")


def test_the_uncertainty_guard_is_accepted_with_beta_eff(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("objectives: [beta_eff]\npruner:\n  use_uncertainty: true\n")
    assert load_config(path).pruner.use_uncertainty


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_win_and_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("n_trials: 5\nproxy:\n  epochs: 2\n")
    config = apply_overrides(load_config(path), {"n_trials": 7, "proxy.epochs": 3.0, "seed": None})
    assert config.n_trials == 7
    assert config.proxy.epochs == 3.0
    assert config.seed == 0
    with pytest.raises(ConfigError, match="workers"):
        apply_overrides(config, {"workers": -2})


def test_config_round_trips_through_dict() -> None:
    config = SearchConfig(n_trials=3, proxies=("params",))
    from nasnc._config import from_mapping

    assert from_mapping(SearchConfig, config.to_dict()) == config
    assert config.to_dict()["proxy"]["probe"] == [128, 64]


def test_the_layout_in_the_module_docstring_shows_every_key_at_its_default() -> None:
    """The docstring says every key is shown with its default: a default changed in
    code (as ``pruner.n_warmup_steps`` was) must change there too."""
    import textwrap
    from typing import Any

    import yaml

    import nasnc_search._config as module

    assert module.__doc__ is not None
    block = module.__doc__.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    shown = yaml.safe_load(textwrap.dedent(block))
    defaults = SearchConfig().to_dict()
    assert sorted(shown) == sorted(defaults)  # every field

    def same(shown: Any, default: Any, where: str) -> None:
        if isinstance(shown, dict) and "..." in shown:  # a section shown by reference
            return
        if isinstance(shown, dict):
            for key, value in shown.items():
                assert key in default, f"{where}{key} is not a config key"
                same(value, default[key], f"{where}{key}.")
            return
        expected = list(default) if isinstance(default, tuple) else default
        assert shown == expected, f"{where.rstrip('.')}: shown {shown!r}, default {default!r}"

    same(shown, defaults, "")


def test_the_pruner_section_defaults_to_what_the_pruner_class_does() -> None:
    """A config without ``pruner:`` options builds the pruner a user of the class gets."""
    import dataclasses
    import inspect

    from nasnc_search import CapacitancePruner
    from nasnc_search._config import PrunerConfig

    defaults = {
        name: p.default
        for name, p in inspect.signature(CapacitancePruner).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    config = PrunerConfig()
    shared = [f.name for f in dataclasses.fields(config) if f.name in defaults]
    assert set(shared) >= {"percentile", "n_startup_trials", "n_warmup_steps", "k", "z"}
    assert {n: getattr(config, n) for n in shared} == {n: defaults[n] for n in shared}


def test_overrides_parse_as_yaml_and_reach_nested_sections() -> None:
    pairs = ["screen.size=40", "screen.weights={grad_norm: -1, naswot: 2}", "timeout=null"]
    overrides = parse_overrides(pairs)
    assert overrides == {
        "screen.size": 40,
        "screen.weights": {"grad_norm": -1, "naswot": 2},
        "timeout": None,
    }
    base = SearchConfig(timeout=60.0)
    config = apply_overrides(
        base, {**overrides, "screen.scores": ["naswot", "grad_norm"]}, keep_none=True
    )
    assert config.screen.weights == {"grad_norm": -1, "naswot": 2} and config.screen.size == 40
    assert config.timeout is None and base.timeout == 60.0
    with pytest.raises(ConfigError, match="'proxxy' is not a section"):
        apply_overrides(base, {"proxxy.epochs": 1})
    with pytest.raises(ConfigError, match=r"'probe' is not a section of proxy \(proxy has no"):
        apply_overrides(base, {"proxy.probe.0": 5})  # was "(sections: )"


def test_exponent_numbers_read_as_numbers_in_files_and_overrides(tmp_path: Path) -> None:
    """PyYAML (YAML 1.1) reads 1e-1 as a string: weights were refused as not numbers."""
    path = tmp_path / "study.yaml"
    path.write_text("pick: {weights: {aggregate: 1, beta_eff: 1e-1}}\nproxy: {lr: 5E-2}\n")
    config = load_config(path)
    assert config.pick.weights == {"aggregate": 1, "beta_eff": 0.1}
    assert config.proxy.lr == 0.05
    overrides = parse_overrides(["pick.weights={aggregate: 2e0}", "study_name=e5", "seed=1e1"])
    assert overrides == {"pick.weights": {"aggregate": 2.0}, "study_name": "e5", "seed": 10.0}
    assert apply_overrides(config, overrides).seed == 10
    with pytest.raises(ConfigError, match=r"study_name must be a string.*quote it"):
        apply_overrides(config, parse_overrides(["study_name=1e5"]))  # read as 100000.0
    with pytest.raises(ConfigError, match=r"seed must be in \[0, 2\*\*63\)"):
        apply_overrides(config, {"seed": 2**63})  # failed at the first trial, in torch
    with pytest.raises(ConfigError, match=r"screen\.seed must be in \[0, 2\*\*63\)"):
        apply_overrides(config, {"screen.seed": 2**63})


def test_a_key_given_twice_in_two_spellings_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text("n_trials: 0\nn-trials: 3\n")  # n_trials=0 would never be checked
    with pytest.raises(
        ConfigError, match="n_trials is given twice \\(as 'n_trials' and 'n-trials'\\)"
    ):
        load_config(path)
    path.write_text("proxy: {train_subset: 0, train-subset: 100}\n")
    with pytest.raises(ConfigError, match=r"proxy\.train_subset is given twice"):
        load_config(path)


@pytest.mark.parametrize(
    ("pair", "named"),
    [("screen.scores=[naswot, synflow, naswot]", "screen.scores lists 'naswot' more than once"),
     ("proxies=[params, flops, params]", "proxies lists 'params' more than once")],
)  # fmt: skip
def test_a_score_listed_twice_is_refused(pair: str, named: str) -> None:
    """A repeated screen score counted double in the rank aggregate without a word."""
    with pytest.raises(ConfigError, match=named):
        apply_overrides(SearchConfig(), parse_overrides([pair]))


def test_an_override_mapping_warns_of_the_keys_it_drops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = load_config(REPO / "configs" / "cpu-30min.yaml")
    assert base.screen.weights == {"grad_norm": -1}
    with caplog.at_level("WARNING", logger="nasnc_search._config"):
        config = apply_overrides(base, {"screen.weights": {"naswot": 2}})
    assert config.screen.weights == {"naswot": 2}  # replaced whole, as documented
    [record] = caplog.records
    assert "screen.weights" in record.getMessage()
    assert "drops grad_norm: -1" in record.getMessage()
    caplog.clear()
    with caplog.at_level("WARNING", logger="nasnc_search._config"):
        apply_overrides(base, {"screen.weights": {"grad_norm": -1, "naswot": 2}, "seed": 3})
    assert not caplog.records  # nothing dropped, nothing said


def test_overrides_refuse_a_twice_given_key_an_empty_value_and_weights_of_zero() -> None:
    with pytest.raises(ConfigError, match="appears twice"):
        parse_overrides(["pick.weights={aggregate: 1, aggregate: 2}"])
    with pytest.raises(ConfigError, match="no value"):
        parse_overrides(["benchmark="])
    with pytest.raises(ConfigError, match="leave no score"):
        apply_overrides(
            SearchConfig(),
            {"screen.weights": {"naswot": 0, "synflow": 0, "jacob_cov": 0, "flops": 0}},
        )


def test_nasnc_search_applies_set_after_its_options_and_null_unsets(tmp_path: Path) -> None:
    from nasnc_search.cli._main import build_parser
    from nasnc_search.cli._search import search_config

    path = tmp_path / "study.yaml"
    path.write_text("n_trials: 7\ntimeout: 60\nscreen: {size: 20, top_k: 4}\n")
    argv = ["search", str(path), "--n-trials", "5", "--set", "n_trials=9", "--set", "timeout=null"]
    config = search_config(build_parser().parse_args(argv))
    assert config.n_trials == 9 and config.timeout is None
    plain = search_config(build_parser().parse_args(["search", str(path), "--n-trials", "5"]))
    assert plain.n_trials == 5 and plain.timeout == 60 and plain.screen.top_k == 4


def test_check_int_takes_integers_in_range_and_names_the_rest() -> None:
    assert check_int("n", np.int64(3)) == 3 and type(check_int("n", np.int64(3))) is int
    assert check_int("seed", 2**63 - 1, high=2**63) == 2**63 - 1
    cases = [
        ({"value": 2.5}, "n must be a non-negative integer, but got n=2.5."),  # not 2
        ({"value": True}, "n must be a non-negative integer, but got n=True."),  # not 1
        ({"value": "3"}, "n must be a non-negative integer, but got n='3'."),
        ({"value": 0, "low": 1}, "n must be a positive integer, but got n=0."),
        ({"value": 1, "low": 2}, "n must be an integer >= 2, but got n=1."),
        ({"value": 2**63, "high": 2**63}, "n must be an integer in [0, 2**63), but got n="),
        ({"value": 5, "high": 3}, "n must be an integer in [0, 3), but got n=5."),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigError) as err:
            check_int("n", **kwargs)
        assert str(err.value).startswith(message)
    assert is_real(1) and is_real(np.float32(0.5)) and is_real(float("inf"))
    assert not is_real(True) and not is_real("1") and not is_real(None)
