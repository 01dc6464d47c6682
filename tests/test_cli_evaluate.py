from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from nasnc_search.cli import main
from nasnc_search.cli._base import UsageError
from nasnc_search.cli._evaluate import parse_archs

CONFIG = {
    "proxy": {
        "resolution": 8,
        "train_subset": 256,
        "valid_size": 128,
        "channels": 4,
        "probe": [16],
        "epochs": 1,
        "batch_size": 128,
    }
}


def test_parse_archs_sample_and_file(tmp_path: Path) -> None:
    sample = parse_archs("sample:5:3")
    assert len(sample) == 5 and sample == parse_archs("sample:5:3")
    assert len({a.canonical() for a in sample}) == 5
    path = tmp_path / "archs.txt"
    path.write_text(
        "# two cells\n|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|\n\n"
        "nb201:310402  # by op code\n"
    )
    assert [a.code for a in parse_archs(str(path))] == ["300100", "310402"]
    path.write_text("|nor_conv_3x3~0|+|none~0|\n")
    with pytest.raises(UsageError, match=r"archs\.txt:1"):
        parse_archs(str(path))
    cases = {
        "sample:x": "expected sample:N[:SEED], but got 'sample:x'",
        "sample:0": "with N >= 1, but got 'sample:0'",
        "sample:1:2:3": "with N >= 1, but got 'sample:1:2:3'",
        "sample:5:-1": "sample:5:-1: seed must be a non-negative integer",  # was numpy's
        str(tmp_path / "none.txt"): f"no file {str(tmp_path / 'none.txt')!r}",
    }
    for bad, message in cases.items():
        with pytest.raises(UsageError, match=re.escape(message)):
            parse_archs(bad)


@pytest.mark.slow
def test_evaluate_json_and_resume(
    tmp_path: Path, synthetic_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    args = [
        "evaluate",
        "sample:2:0",
        "--config",
        str(cfg),
        "--cache",
        str(tmp_path / "cache"),
        "--data-root",
        str(synthetic_root),
        "--device",
        "cpu",
        "--proxies",
        "params,naswot",
        "--format",
        "json",
        "--no-progress",
    ]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2
    for row in rows:
        assert {
            "arch",
            "beta_eff",
            "beta_eff_std",
            "proxy_valid_acc",
            "params",
            "naswot",
            "tse",
            "cost_s",
        } <= set(row)
        assert row["cache_hit"] is False
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert all(r["cache_hit"] for r in again)
    assert [r["beta_eff"] for r in again] == [r["beta_eff"] for r in rows]


def test_unknown_proxy_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "evaluate",
            "sample:1",
            "--proxies",
            "params,magic",
            "--data-root",
            str(tmp_path / "no-data"),  # checked before any data is read
            "--cache",
            str(tmp_path / "c"),
        ]
    )
    assert code == 2
    assert "'magic'" in capsys.readouterr().err
