from __future__ import annotations

import json

import pytest

from nasnc_search.cli import main


def test_space_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["space", "info", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["architectures"] == 15625
    assert info["unique"] == 6466
    assert info["networks"] == 14125


def test_space_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    arch = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"
    assert main(["space", "show", arch, "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["arch"] == arch
    assert set(info) >= {"arch", "canonical", "params", "macs"}
    assert info["params"] > 0 and info["macs"] > 0
    # none on edge 2<-1: the cell with nodes 1 and 2 swapped is the same network
    swapped = "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    assert main(["space", "show", swapped, "--format", "json"]) == 0
    twin = json.loads(capsys.readouterr().out)
    assert twin["graph_form"] == info["graph_form"] == arch  # the lesser of the two
    assert (twin["params"], twin["macs"]) == (info["params"], info["macs"])
    assert twin["canonical"] != info["canonical"]  # the benchmark's form splits them
    assert main(["space", "show", arch, "--dataset", "ImageNet16-120", "--format", "json"]) == 0
    small = json.loads(capsys.readouterr().out)
    assert small["macs"] < info["macs"]


@pytest.mark.parametrize(
    ("arch", "channels", "cells"),
    [
        ("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|", 8, 1),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|", 16, 5),
    ],
)
def test_space_show_counts_the_network_it_describes(
    arch: str, channels: int, cells: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from nasnc.models import build_network, count_macs, count_params

    args = ["space", "show", arch, "--channels", str(channels), "--cells-per-stage", str(cells)]
    assert main([*args, "--dataset", "cifar100", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    net = build_network(arch, channels=channels, cells_per_stage=cells, num_classes=100)
    assert (info["params"], info["macs"]) == (count_params(net), count_macs(net, 32))


def test_space_show_of_a_wide_network_allocates_no_weights(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 4096 channels, every edge a 3x3 convolution: about 95 G parameters (380 GB in float32)
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    assert main(["space", "show", arch, "--channels", "4096", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"] > 2e10 and info["macs"] > info["params"]


def test_usage_error_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["space", "show", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"]) == 2
    err = capsys.readouterr().err
    assert "'conv'" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_missing_subcommand_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["space"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "nasnc space: error: the following arguments are required: COMMAND" in err
