"""`prune MODEL --method lottery`: iterative magnitude pruning, tickets against their controls."""
from __future__ import annotations

import datetime
import sys
from pathlib import Path

from netfrontier.cli.common import check_out_dir, err, print_table


def run_lottery_cmd(model: str, ratio: float | None, epochs: int, data: Path | None,
                    out: Path, threads: int, hw: str, *, rounds: int | None = None,
                    seeds: int = 3, rewind: int = 0, scope: str = "layer",
                    limit: int | None = None) -> None:
    import torch

    from netfrontier.compress.lottery import LotteryConfig, run_lottery, summary
    from netfrontier.compress.lottery_report import write_lottery
    from netfrontier.compress.ticket_cost import ticket_costs
    from netfrontier.errors import OptionError
    from netfrontier.hardware.registry import get_hardware

    dataset = str(data) if data else "fashion-mnist"
    rate = 0.3
    if ratio is not None:  # the fraction of weights to end with: rounds of 30% reach it
        import math

        if not 0 < ratio < 1:
            raise OptionError(f"--ratio (weights kept) must be between 0 and 1, got {ratio:g}")
        rounds = rounds or max(1, math.ceil(math.log(ratio) / math.log(1 - rate)))
    cfg = LotteryConfig(model=model, dataset=dataset, rounds=rounds or 9, rate=rate,
                        epochs=epochs or 3, seeds=tuple(range(seeds)), rewind_iter=rewind,
                        scope=scope, limit_train=limit)
    specs = [get_hardware(h) for h in dict.fromkeys([hw, "img-series4-1core", "tpu-v1"])]
    check_out_dir(out)
    torch.set_num_threads(threads)
    rows = run_lottery(cfg, progress=lambda s: err.print(s, highlight=False))
    table = summary(rows)
    costs = ticket_costs(cfg, rows, specs)
    meta = {"model": model, "dataset": dataset, "rewind_iter": rewind, "config": cfg.__dict__,
            "command": " ".join(["netfrontier"] + sys.argv[1:]),
            "date": datetime.date.today().isoformat()}
    paths = write_lottery(rows, table, costs, meta, out)
    print_table(f"lottery tickets: {model} on {dataset}", ("round", "weights %", "condition",
                                                           "accuracy % (mean ± std)"),
                [(str(r["round"]), f"{100 * r['density']:.1f}", r["condition"],
                  f"{r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f}") for r in table],
                right=("weights %", "accuracy % (mean ± std)"))
    err.print(f"wrote {paths['plot']}, {paths['summary']} and {paths['json']}", highlight=False)
