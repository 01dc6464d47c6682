"""The screen over several processes: the serial screen's scores, cache and shortlist."""

from __future__ import annotations

import logging
import multiprocessing as mp
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from nasnc import ConfigError
from nasnc.data import ProxyData
from nasnc.pipeline import ProxyConfig, load_proxy_data, screen_archs
from nasnc.pipeline import _screen as pipeline_screen
from nasnc.store import Store
from nasnc_search._screen import edge_params, pool_archs, run_screen
from nasnc_search._stages import screen_study
from nasnc_search._study import open_study
from nasnc_search.cli import _search as search_cli
from nasnc_search.cli import main
from tests.test_search import TINY_PROXY, tiny_config

SIZE = 16


@pytest.fixture(autouse=True)
def _one_thread_and_no_threshold(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Serial screens in this process use one thread, like each screen process here."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    monkeypatch.setattr(pipeline_screen, "MIN_PARALLEL", 1)  # processes even for a few cells
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_data(synthetic_root: Path) -> ProxyData:
    return load_proxy_data(ProxyConfig(**TINY_PROXY), synthetic_root, device="cpu")


def test_two_processes_give_the_serial_scores_entries_and_shortlist(
    tmp_path: Path, synthetic_root: Path, tiny_data: ProxyData
) -> None:
    config = tiny_config(tmp_path, synthetic_root, **{"screen.size": SIZE, "screen.top_k": 5})
    serial = run_screen(config, tiny_data, Store(tmp_path / "a", durable=False), device="cpu")
    seen: list[tuple[int, int]] = []
    study = open_study(config)
    parallel = screen_study(
        config,
        study,
        device="cpu",
        workers=2,
        threads=1,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert parallel is not None
    assert mp.active_children() == []  # no screen process outlives the call (stage 2 needs the CPU)
    store = Store(config.cache)
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert [t.user_attrs["screen_rank"] for t in waiting] == [1, 2, 3, 4, 5]
    assert [edge_params(a) for a, _v in serial.shortlist(5)] == [
        t.system_attrs["fixed_params"] for t in waiting
    ]
    assert seen == [(i, SIZE) for i in range(1, SIZE + 1)]
    assert parallel.result.cached == 0 and len(parallel.result.per_cell_s) == SIZE
    assert parallel.result.archs == serial.result.archs
    assert parallel.result.keys == serial.result.keys
    assert parallel.result.scores.keys() == serial.result.scores.keys()
    for name, column in serial.result.scores.items():
        np.testing.assert_array_equal(parallel.result.scores[name], column)  # NaN == NaN here
    assert parallel.shortlist(5) == serial.shortlist(5)

    # every process wrote its cells' score-only entries: the same entries as the serial screen
    ours = {e.key: e for e in store.entries()}
    theirs = {e.key: e for e in Store(tmp_path / "a").entries()}
    assert ours.keys() == theirs.keys() == set(serial.result.keys)
    for key, entry in ours.items():
        assert entry.summary["score_only"] is True
        np.testing.assert_array_equal(
            [entry.scores[n] for n in sorted(entry.scores)],
            [theirs[key].scores[n] for n in sorted(theirs[key].scores)],
        )
    again = run_screen(config, tiny_data, Store(config.cache), device="cpu", workers=2)
    assert again.result.cached == SIZE and again.result.per_cell_s == []
    assert again.shortlist(5) == serial.shortlist(5)


def test_an_interrupted_parallel_screen_keeps_the_finished_cells(
    tmp_path: Path, synthetic_root: Path, tiny_data: ProxyData
) -> None:
    config = tiny_config(tmp_path, synthetic_root, **{"screen.size": SIZE})
    proxy = ProxyConfig(**TINY_PROXY)

    def stop(done: int, _total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    store = Store(tmp_path / "cache", durable=False)
    archs = pool_archs(config)
    with pytest.raises(KeyboardInterrupt):
        screen_archs(
            archs,
            proxy,
            tiny_data,
            names=config.screen.scores,
            store=store,
            device="cpu",
            workers=2,
            threads=1,
            progress=stop,
        )
    assert mp.active_children() == []  # ours were stopped, not left running
    kept = len(Store(tmp_path / "cache"))
    assert 3 <= kept < SIZE
    rest = screen_archs(
        archs, proxy, tiny_data, names=config.screen.scores, store=store, device="cpu"
    )
    assert rest.cached == kept and len(rest.per_cell_s) == SIZE - kept
    assert len(Store(tmp_path / "cache")) == SIZE


def test_a_screen_measuring_latency_stays_in_one_process(
    tiny_data: ProxyData, caplog: pytest.LogCaptureFixture
) -> None:
    children: list[int] = []
    archs = [
        "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|",
        "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|",
        "|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|",
    ]
    with caplog.at_level(logging.INFO, logger=pipeline_screen.__name__):
        result = screen_archs(
            archs,
            ProxyConfig(**TINY_PROXY),
            tiny_data,
            names=["flops", "latency"],
            device="cpu",
            workers=2,
            threads=1,
            progress=lambda _done, _total: children.append(len(mp.active_children())),
        )
    assert children == [0, 0, 0]  # wall-clock latency is not measured beside other processes
    assert np.all(result.scores["latency"] > 0) and len(result.per_cell_s) == 3
    why = [r.getMessage() for r in caplog.records if "wall-clock" in r.getMessage()]
    assert len(why) == 1 and "latency" in why[0] and "one process, not 2" in why[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workers": 0}, "workers=0"),
        ({"workers": True}, "workers=True"),
        ({"threads": 0}, "threads=0"),
    ],
)
def test_workers_and_threads_are_checked(
    kwargs: dict[str, int], message: str, tiny_data: ProxyData
) -> None:
    with pytest.raises(ConfigError, match=message):
        screen_archs(
            ["|skip_connect~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|"],
            ProxyConfig(**TINY_PROXY),
            tiny_data,
            names=["flops"],
            device="cpu",
            **kwargs,  # type: ignore[arg-type]
        )


def test_search_draws_a_screen_bar_on_a_terminal(
    tmp_path: Path,
    synthetic_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tiny_config(
        tmp_path, synthetic_root, **{"screen.size": 6, "screen.top_k": 1, "n_trials": 1}
    )
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    monkeypatch.setattr(search_cli, "progress_wanted", lambda _no_progress: True)  # a terminal
    assert main(["search", str(path)]) == 0
    err = capsys.readouterr().err
    assert "screen tiny" in err and "6/6" in err and "cell" in err
    assert "study tiny" in err and "trial" in err
    assert err.index("screen tiny") < err.index("study tiny")  # stage 1's bar, then stage 2's
