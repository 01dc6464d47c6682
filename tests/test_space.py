from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nasnc import ArchError, ConfigError
from nasnc.space import (
    NASLIB_OPS,
    NUM_ARCHS,
    NUM_GRAPHS,
    NUM_UNIQUE,
    NUM_UNIQUE_NONZERO,
    OPS,
    Arch,
    all_archs,
    canonical_classes,
    sample_archs,
)

INDEX0 = (
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|"
    "+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
)


def test_round_trip_of_benchmark_string() -> None:
    arch = Arch.from_str(INDEX0)
    assert str(arch) == INDEX0
    assert arch.ops == (
        "avg_pool_3x3",
        "nor_conv_1x1",
        "skip_connect",
        "nor_conv_1x1",
        "skip_connect",
        "skip_connect",
    )
    assert arch.op(3, 2) == "skip_connect"
    assert Arch.parse(f"nb201:{arch.code}") == arch


@given(st.tuples(*[st.sampled_from(OPS)] * 6))
def test_round_trip_every_arch(ops: tuple[str, ...]) -> None:
    arch = Arch(ops)
    assert Arch.from_str(str(arch)) == arch
    assert Arch.from_indices(arch.op_indices) == arch


@pytest.mark.parametrize(
    ("text", "culprit"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "'conv'"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "'none~1'"),
        ("|none~0|+|none~0|none~1|", "got 2"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", "got 4"),
        ("|none~0|+|none~0||none~1|+|none~0|none~1|none~2|", "extra '|'"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|", "needs 3"),
        ("|none~0|+|none~0|none~1|+none~0|none~1|none~2|", "must be written"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "'none0'"),
        ("|none~0|++|none~0|none~1|", "extra '+'"),
    ],
)
def test_parser_names_the_culprit(text: str, culprit: str) -> None:
    with pytest.raises(ArchError, match=culprit if culprit.startswith("'") else None) as err:
        Arch.from_str(text)
    assert culprit in str(err.value)
    assert isinstance(err.value, ValueError)


def test_constructor_and_indices_validate() -> None:
    with pytest.raises(ArchError, match="6 operations"):
        Arch(("none",) * 5)
    with pytest.raises(ArchError, match="'conv'"):
        Arch(("conv",) * 6)
    with pytest.raises(ArchError, match="out of range"):
        Arch.from_indices([0, 1, 2, 3, 4, 5])


def test_space_size_and_unique_count() -> None:
    archs = all_archs()
    assert len(archs) == NUM_ARCHS == 15625
    assert len(set(archs)) == NUM_ARCHS
    assert len(canonical_classes()) == NUM_UNIQUE == 6466
    nonzero = {key for key, members in canonical_classes().items() if not members[0].is_zero}
    assert len(nonzero) == NUM_UNIQUE_NONZERO
    assert len(sample_archs(NUM_UNIQUE_NONZERO, seed=0, unique=True, exclude_zero=True)) == len(
        nonzero
    )


def test_canonical_form_merges_what_it_should() -> None:
    # a conv on node 1 whose only way out is a none edge does not matter
    a = Arch.from_str("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    b = Arch.from_str("|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert a.canonical() == b.canonical()
    # the order of the terms of a sum does not matter
    c = Arch.from_str(
        "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"
    )
    d = Arch.from_str(
        "|avg_pool_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"
    )
    assert c.canonical() == d.canonical()
    # but different ops do
    e = Arch.from_str(
        "|nor_conv_1x1~0|+|avg_pool_3x3~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"
    )
    assert e.canonical() != c.canonical()


def graph_classes() -> dict[str, list[Arch]]:
    classes: dict[str, list[Arch]] = {}
    for a in all_archs():
        classes.setdefault(a.graph_form(), []).append(a)
    return classes


def test_graph_form_pairs_exactly_the_node_swaps() -> None:
    classes = graph_classes()
    assert len(classes) == NUM_GRAPHS == 14125
    for form, members in classes.items():
        assert form in {str(a) for a in members}  # the form is one of its cells
        if len(members) == 2:
            a, b = members
            assert a.op(2, 1) == b.op(2, 1) == "none"
            assert (a.op(1, 0), a.op(3, 1)) == (b.op(2, 0), b.op(3, 2))
            assert (b.op(1, 0), b.op(3, 1)) == (a.op(2, 0), a.op(3, 2))
            assert a.op(3, 0) == b.op(3, 0)
    # an edge between nodes 1 and 2 fixes which is which
    a = Arch.from_str("|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|none~0|none~1|none~2|")
    assert a.graph_form() == str(a)


def test_graph_form_is_not_the_canonical_form() -> None:
    # the benchmark's form merges one conv doubled with two convs ...
    one = Arch.from_str(
        "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|skip_connect~1|skip_connect~2|"
    )
    two = Arch.from_str("|none~0|+|nor_conv_3x3~0|none~1|+|nor_conv_3x3~0|none~1|skip_connect~2|")
    assert one.canonical() == two.canonical()
    assert one.graph_form() != two.graph_form()
    # ... and splits a cell from its own node swap (a zero term only node 2 has)
    c = Arch.from_str("|none~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|")
    d = Arch.from_str("|none~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|")
    assert c.graph_form() == d.graph_form()
    assert c.canonical() != d.canonical()


def test_is_zero() -> None:
    assert Arch(("none",) * 6).is_zero
    assert Arch.from_str("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|").is_zero
    assert not Arch.from_str("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|").is_zero
    assert sum(a.is_zero for a in all_archs()) > 0


def test_sampling_is_seeded_and_unique() -> None:
    assert sample_archs(10, seed=3) == sample_archs(10, seed=3)
    assert sample_archs(10, seed=3) != sample_archs(10, seed=4)
    uniq = sample_archs(200, seed=0, unique=True, exclude_zero=True)
    assert len({a.canonical() for a in uniq}) == 200
    assert not any(a.is_zero for a in uniq)
    with pytest.raises(ConfigError, match="n=-1"):
        sample_archs(-1, seed=0)
    with pytest.raises(ConfigError, match="unique"):
        sample_archs(NUM_UNIQUE + 1, seed=0, unique=True)


def test_benchmark_table_strings_all_parse(nb201_csv: Path) -> None:
    with nb201_csv.open() as f:
        rows = list(csv.DictReader(f))
    parsed = {Arch.from_str(r["arch_str"]) for r in rows}
    assert len(rows) == NUM_ARCHS
    assert parsed == set(all_archs())
    assert rows[0]["arch_str"] == INDEX0


# ------------------------------------------------------------------ op codes
BEST_C10 = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)


@pytest.mark.parametrize(
    ("naslib", "arch_str"),
    [
        # NASLib: ops skip, none, conv3, conv1, pool; edges 0-1, 0-2, 0-3, 1-2, 1-3, 2-3
        (
            "000000",
            "|skip_connect~0|+|skip_connect~0|skip_connect~1|"
            "+|skip_connect~0|skip_connect~1|skip_connect~2|",
        ),
        ("111111", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
        ("220222", BEST_C10),
        (
            "012345"[:5] + "4",
            "|skip_connect~0|+|none~0|nor_conv_1x1~1|"
            "+|nor_conv_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
        ),
    ],
)
def test_naslib_codes_both_ways(naslib: str, arch_str: str) -> None:
    arch = Arch.from_str(arch_str)
    assert Arch.from_naslib(naslib) == arch
    assert Arch.from_naslib([int(c) for c in naslib]) == arch
    assert arch.to_naslib() == tuple(int(c) for c in naslib)
    assert arch.naslib_code == naslib
    assert Arch.parse(f"naslib:{naslib}") == arch


def test_nb201_codes_are_the_benchmark_order() -> None:
    assert Arch.parse("nb201:000000") == Arch(("none",) * 6)
    assert Arch.parse("nb201:111111") == Arch(("skip_connect",) * 6)
    assert Arch.parse("NB201:333133") == Arch.from_str(BEST_C10)
    assert Arch.from_str(BEST_C10).code == "333133"


@given(st.tuples(*[st.sampled_from(OPS)] * 6))
def test_naslib_round_trip_every_arch(ops: tuple[str, ...]) -> None:
    arch = Arch(ops)
    assert Arch.from_naslib(arch.to_naslib()) == arch
    assert Arch.parse(f"naslib:{arch.naslib_code}") == arch
    assert Arch.parse(f"nb201:{arch.code}") == arch
    assert sorted(NASLIB_OPS) == sorted(OPS)


@pytest.mark.parametrize("code", ["000000", "310402", "01234"])
def test_bare_digit_code_is_refused_naming_both_prefixes(code: str) -> None:
    with pytest.raises(ArchError) as err:
        Arch.parse(code)
    message = str(err.value)
    assert "nb201:" in message and "naslib:" in message and code in message


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: Arch.from_indices([3.9, 0, 1, 4, 0, 2]), "must be integers, but got 3.9"),
        (lambda: Arch.from_naslib([0.7] * 6), "must be integers, but got 0.7"),  # was all-skip
        (lambda: Arch.from_indices(["a"] * 6), "must be integers, but got 'a'"),
        (lambda: Arch.parse("nb201:\u00b2" * 1 + "\u00b2" * 5), "6 digits"),  # int() failed
    ],
)
def test_op_indices_that_are_not_integers_are_refused(make, named: str) -> None:
    with pytest.raises(ArchError, match=named):
        make()


@pytest.mark.parametrize("n", [2.5, True, "3", math.nan])
def test_sample_size_must_be_an_integer(n: object) -> None:
    with pytest.raises(ConfigError, match="n must be a non-negative integer"):
        sample_archs(n, seed=0)  # type: ignore[arg-type]  # 2.5 drew 3 cells, nan none


@pytest.mark.parametrize("text", ["foo:123412", "nb:012340", "NASLIB201:000000"])
def test_an_unknown_prefix_is_named(text: str) -> None:
    """It used to say "expected 3 nodes separated by '+'", as if a benchmark string."""
    with pytest.raises(ArchError, match="unknown op-code prefix") as err:
        Arch.parse(text)
    assert repr(text.split(":")[0] + ":") in str(err.value) and "nb201:" in str(err.value)


@pytest.mark.parametrize(
    ("text", "culprit"),
    [
        ("naslib:00000", "6 digits"),
        ("naslib:000005", "out of range"),
        ("nb201:31040x", "6 digits"),
        ("nb201:310409", "out of range"),
    ],
)
def test_prefixed_codes_validate(text: str, culprit: str) -> None:
    with pytest.raises(ArchError, match=culprit):
        Arch.parse(text)


def test_naslib_reading_matches_the_benchmark(nb201_csv: Path) -> None:
    """000000 is a weak all-none cell to nasnc and a trainable all-skip cell to NASLib."""
    with nb201_csv.open() as f:
        acc = {r["arch_str"]: float(r["cifar10_valid_valacc_200"]) for r in csv.DictReader(f)}
    assert acc[str(Arch.parse("nb201:000000"))] < 15
    assert acc[str(Arch.parse("naslib:000000"))] > 30


def test_digits_that_are_no_op_code_are_not_told_to_take_a_prefix() -> None:
    # 'nb201:11' fails too: the advice must not be to write it
    with pytest.raises(ArchError, match=r"6-digit op code prefixed nb201: or naslib:.*'11'"):
        Arch.parse("11")
