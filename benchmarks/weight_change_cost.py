"""Cost of the ``beta_eff_dw_product_sf`` column on the CPU default proxy network.

For a seeded sample of cells, times :class:`nasnc.capacitance.WeightChangeObserver`
on the ``ProxyConfig()`` network (one torch thread): the trace and W0 copy done
once per run, and one reading of βeff of W - W0 (done at every report point),
and prints both beside one training step of the same network, as a ratio.

    python benchmarks/weight_change_cost.py --cells 20
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nasnc.capacitance import WeightChangeObserver
from nasnc.pipeline import ProxyConfig
from nasnc.pipeline._evaluate import _build as build_proxy_network
from nasnc.space import sample_archs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=20, help="readings per cell (median)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = ProxyConfig()
    shape = (1, 3, config.resolution or 32, config.resolution or 32)
    batch = torch.randn(config.batch_size, *shape[1:])
    labels = torch.randint(0, config.num_classes, (config.batch_size,))
    starts, reports, steps = [], [], []
    for arch in sample_archs(args.cells, seed=0, unique=True, exclude_zero=True):
        model = build_proxy_network(arch, config, 0, torch.device("cpu")).train()
        observer = WeightChangeObserver(shape)
        t0 = time.perf_counter()
        observer.on_train_start(model, 320)
        starts.append(time.perf_counter() - t0)
        opt = torch.optim.SGD(model.parameters(), lr=config.lr)
        t0 = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(batch), labels).backward()
        opt.step()
        steps.append(time.perf_counter() - t0)
        readings = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            observer.on_report(1)
            readings.append(time.perf_counter() - t0)
        reports.append(statistics.median(readings))
    step = statistics.median(steps)
    print(f"{args.cells} cells, ProxyConfig() network, 1 torch thread")
    print(f"training step (batch {config.batch_size}): median {1e3 * step:.1f} ms")
    for name, values in (("trace + W0 copy, once per run", starts), ("one reading", reports)):
        med = statistics.median(values)
        print(
            f"{name}: median {1e3 * med:.2f} ms, max {1e3 * max(values):.2f} ms, "
            f"{med / step:.4f} of a training step"
        )


if __name__ == "__main__":
    main()
