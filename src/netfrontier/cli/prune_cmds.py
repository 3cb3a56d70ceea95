"""`prune`: shrink a network for one chip (channels, or lottery tickets), measure and cost it."""
from __future__ import annotations

import datetime
import sys
from pathlib import Path

import typer

from netfrontier.cli import app
from netfrontier.cli.common import check_number, check_out_dir, err


def _target(latency_ms, dram_mb, energy_mj, ratio, objective):
    from netfrontier.errors import OptionError

    given = [(n, v) for n, v in (("latency", latency_ms), ("dram", dram_mb),
                                 ("energy", energy_mj), ("ratio", ratio)) if v is not None]
    if len(given) != 1:
        raise OptionError("give exactly one of --target-latency, --target-dram, "
                          "--target-energy or --ratio")
    name, v = given[0]
    check_number({"ratio": "ratio", "latency": "target-latency", "dram": "target-dram",
                  "energy": "target-energy"}[name], v, lo=0, lo_open=True)
    if name == "ratio":
        return objective, None, v
    return name, v * {"latency": 1e-3, "dram": 1e6, "energy": 1e-3}[name], None


@app.command()
def prune(
    model: str = typer.Argument(..., help="efficientnet_lite0/1/2 (or any model with offline "
                                          "weights); with --method lottery: lenet300 | conv2"),
    hw: str = typer.Option("img-series4-1core", "--hw", help="preset to prune for"),
    target_latency: float = typer.Option(None, "--target-latency", help="ms per inference"),
    target_dram: float = typer.Option(None, "--target-dram", help="MB of DRAM traffic"),
    target_energy: float = typer.Option(None, "--target-energy", help="mJ per inference"),
    ratio: float = typer.Option(None, "--ratio", help="target as a fraction of the unpruned "
                                                      "cost (channel); weights kept (lottery)"),
    objective: str = typer.Option("latency", "--objective", help="with --ratio: latency | "
                                                                 "dram | energy"),
    method: str = typer.Option("channel", "--method", help="channel | lottery"),
    importance: str = typer.Option("l1", "--importance", help="l1 | l2 | taylor | bn"),
    allocation: str = typer.Option("hardware", "--allocation", help="hardware | uniform"),
    round_to_tile: bool = typer.Option(True, "--round/--no-round",
                                       help="channel counts in multiples of the array's tile"),
    min_keep: float = typer.Option(0.25, "--min-keep", help="least fraction of a group kept"),
    fold: bool = typer.Option(True, "--fold/--no-fold",
                              help="fold removed channels' mean contribution into biases"),
    bn_reestimate: bool = typer.Option(False, "--bn-reestimate", help="re-measure batch norms"),
    epochs: int = typer.Option(0, "--epochs", help="distillation epochs after pruning"),
    lr: float = typer.Option(1e-4, "--lr", help="distillation learning rate"),
    wbits: int = typer.Option(None, "--wbits", help="also PTQ the pruned (and unpruned) network"),
    also_hw: str = typer.Option("", "--also-hw", help="more presets to cost on, comma-separated"),
    data: Path = typer.Option(None, "--data", help="labelled images (default: "
                                                   "../shared/data/imagenet-sample)"),
    limit: int = typer.Option(None, "--limit", help="only the first N images"),
    sens_images: int = typer.Option(64, "--sens-images", help="images for sensitivity"),
    threads: int = typer.Option(2, "--threads", help="torch CPU threads"),
    rounds: int = typer.Option(None, "--rounds", help="lottery: pruning rounds (30%% each)"),
    seeds: int = typer.Option(3, "--seeds", help="lottery: seeds per condition"),
    rewind: int = typer.Option(0, "--rewind", help="lottery: rewind to this iteration "
                                                   "(0: to initialisation)"),
    scope: str = typer.Option("layer", "--scope", help="lottery: layer | global magnitude"),
    out: Path = typer.Option(Path("prune-report"), "--out", help="output directory"),
) -> None:
    """Prune for a chip: per-layer channels, top-1 (paired), latency / DRAM / energy."""
    from netfrontier.errors import OptionError

    if method not in ("channel", "lottery"):
        raise OptionError(f"unknown method '{method}' (use channel or lottery)")
    check_number("threads", threads, lo=1)
    if method == "lottery":
        from netfrontier.cli.lottery_cmd import run_lottery_cmd

        check_number("seeds", seeds, lo=1)
        return run_lottery_cmd(model, ratio, epochs, data, out, threads, hw, rounds=rounds,
                               seeds=seeds, rewind=rewind, scope=scope, limit=limit)
    from netfrontier.compress.prune_report import write_prune_report
    from netfrontier.compress.prune_study import PruneOptions, run_prune
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.store import tool_version
    from netfrontier.zoo import zoo_rows

    obj, target, rat = _target(target_latency, target_dram, target_energy, ratio, objective)
    opts = PruneOptions(hw=hw, objective=obj, target=target, ratio=rat, importance=importance,
                        allocation=allocation, round_to_tile=round_to_tile, min_keep=min_keep,
                        fold=fold, bn_reestimate=bn_reestimate, epochs=epochs, lr=lr,
                        wbits=wbits, sens_images=sens_images,
                        data=str(data) if data else None, limit=limit, threads=threads)
    also = tuple(h.strip() for h in also_hw.split(",") if h.strip())
    for h in (hw, *also):
        get_hardware(h)  # unknown presets fail before any work
    if data is not None and not data.is_dir():
        raise OptionError(f"--data directory '{data}' does not exist")
    check_out_dir(out)
    result = run_prune(model, opts, out, say=lambda s: err.print(s, highlight=False),
                       hardware_also=also)
    meta = {"command": " ".join(["netfrontier"] + sys.argv[1:]), "tool_version": tool_version(),
            "date": datetime.date.today().isoformat()}
    paths = write_prune_report(result, out, meta, zoo_rows(hw))
    from netfrontier.cli.common import print_table

    print_table(f"{model} pruned for {hw}", ("variant", "top-1 %", "drop", "estimated top-1",
                                             *[f"{h} latency" for h in (hw, *also)]),
                [(r["variant"], f"{r['top1']:.2f}", f"{r['top1_drop']:+.2f} ± "
                  f"{r['top1_drop_se']:.2f}",
                  "–" if r["estimated_top1"] is None else f"{r['estimated_top1']:.2f}",
                  *[f"{r['cost'][h]['latency_s'] * 1e3:.3f} ms" for h in (hw, *also)])
                 for r in result["rows"]], right=("top-1 %", "estimated top-1"))
    err.print(f"wrote {paths['html']}, {paths['json']} and the pruned network in {out}",
              highlight=False)
