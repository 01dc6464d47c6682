"""``nasnc space info`` and ``nasnc space show``."""

from __future__ import annotations

import argparse

from nasnc._catalogue import BENCHMARK_DATASETS, CATALOGUE
from nasnc.space import NUM_ARCHS, OPS, Arch, all_archs, canonical_classes

from ._base import ARCH_HELP, FORMATS, Command, emit, positive_int


class SpaceInfo(Command):
    name = "space info"
    help = "counts of the NAS-Bench-201 search space"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--format", choices=FORMATS, default="table")

    def run(self, args: argparse.Namespace) -> int:
        info = {
            "architectures": len(all_archs()),
            "unique": len(canonical_classes()),
            "networks": len({a.graph_form() for a in all_archs()}),
            "edges": 6,
            "ops": list(OPS),
        }
        assert info["architectures"] == NUM_ARCHS
        if args.format == "json":
            emit([], [], "json", json_payload=info)
        elif args.format == "csv":
            emit([{**info, "ops": " ".join(OPS)}], list(info), "csv")
        else:
            print(f"architectures      {info['architectures']}")
            print(f"unique (canonical) {info['unique']}")
            print(f"networks (graph)   {info['networks']}")
            print(f"edges per cell     {info['edges']}")
            print(f"operations         {', '.join(OPS)}")
        return 0


class SpaceShow(Command):
    name = "space show"
    help = "canonical and graph forms, parameters and MACs of one architecture"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("arch", help=ARCH_HELP)
        parser.add_argument(
            "--dataset",
            choices=tuple(BENCHMARK_DATASETS),
            default="cifar10",
            help="sets the classes and input resolution (default: cifar10)",
        )
        parser.add_argument(
            "--channels", type=positive_int, default=16, help="width of the first stage"
        )
        parser.add_argument(
            "--cells-per-stage", type=positive_int, default=5, help="cells in each of 3 stages"
        )
        parser.add_argument("--format", choices=FORMATS, default="table")

    def run(self, args: argparse.Namespace) -> int:
        import torch

        from nasnc.models import arch_params, build_network, count_macs

        arch = Arch.parse(args.arch)
        shape = CATALOGUE[BENCHMARK_DATASETS[args.dataset]]
        classes, resolution = shape.num_classes, shape.resolution
        with torch.device("meta"):  # shapes only: no memory or time for the weights
            net = build_network(
                arch,
                channels=args.channels,
                cells_per_stage=args.cells_per_stage,
                num_classes=classes,
            )
        info = {
            "arch": str(arch),
            "code": f"nb201:{arch.code}",
            "naslib": f"naslib:{arch.naslib_code}",
            "canonical": arch.canonical(),
            "class_size": len(canonical_classes()[arch.canonical()]),
            "graph_form": arch.graph_form(),
            "dataset": args.dataset,
            "params": arch_params(
                arch,
                channels=args.channels,
                cells_per_stage=args.cells_per_stage,
                num_classes=classes,
            ),
            "macs": count_macs(net, resolution),
            "resolution": resolution,
        }
        if args.format == "json":
            emit([], [], "json", json_payload=info)
        elif args.format == "csv":
            emit([info], list(info), "csv")
        else:
            width = max(len(k) for k in info)
            for key, value in info.items():
                print(f"{key.ljust(width)}  {value}")
        return 0
