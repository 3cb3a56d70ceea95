"""`search`: hardware-aware architecture search (Optuna), its workers, and `search export`."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from netfrontier.cli import app
from netfrontier.cli.common import check_number, check_out_dir, err, print_table

search_app = typer.Typer(help="Hardware-aware architecture search: `netfrontier search --hw H "
                              "--data DIR --trials N --out DIR`; `search export TRIAL`.")
app.add_typer(search_app, name="search")


def _say(s: str) -> None:
    err.print(s, markup=False, highlight=False)


@search_app.callback(invoke_without_command=True)
def search(
    ctx: typer.Context,
    hw: str = typer.Option(None, "--hw", help="preset or profile to search for"),
    data: str = typer.Option(None, "--data", help="labelled ImageNet images (the Lite space), "
                                                  "or fashion-mnist | digits (from scratch)"),
    objectives: str = typer.Option("top1,latency", "--objectives",
                                   help="top1 and one or two of latency, dram, energy"),
    constraints: str = typer.Option(None, "--constraints", help="e.g. max_latency_ms=2,"
                                    "max_params=5e6,max_activation_mb=4,min_top1=70"),
    max_latency_ms: float = typer.Option(None, "--max-latency-ms"),
    max_params: float = typer.Option(None, "--max-params"),
    max_activation_mb: float = typer.Option(None, "--max-activation-mb"),
    min_top1: float = typer.Option(None, "--min-top1", help="on the select images, %"),
    trials: int = typer.Option(20, "--trials", help="measured trials (the budget)"),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe | nsga2 | random"),
    compare_random: bool = typer.Option(False, "--compare-random",
                                        help="also run random search at the same budget"),
    seed: int = typer.Option(0, "--seed"),
    storage: str = typer.Option(None, "--storage", help="sqlite:///PATH (default: OUT/"
                                "study.sqlite3) or postgresql://USER@HOST:PORT/DB"),
    study: str = typer.Option(None, "--study", help="study name (default from the options)"),
    workers: int = typer.Option(1, "--workers", help="local worker processes"),
    worker: bool = typer.Option(False, "--worker", help="only pull and run trials of --study"),
    worker_index: int = typer.Option(0, "--worker-index", hidden=True),
    cache_dir: Path = typer.Option(None, "--cache-dir", hidden=True),
    space: Path = typer.Option(None, "--space", help="search space YAML (docs/search.md)"),
    limit: int = typer.Option(None, "--limit", help="only the first N images"),
    screen: bool = typer.Option(False, "--screen", help="skip measuring candidates the "
                                "accuracy predictor is sure the front dominates"),
    recovery_epochs: int = typer.Option(0, "--recovery-epochs",
                                        help="distillation epochs per candidate (Lite)"),
    halving: bool = typer.Option(False, "--halving", help="successive halving over epochs"),
    also_hw: str = typer.Option("", "--also-hw", help="more presets to cost the Pareto set on"),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines"),
    zoo: bool = typer.Option(True, "--zoo/--no-zoo", help="the zoo on the frontier plot"),
    threads: int = typer.Option(None, "--threads", help="torch CPU threads per process"),
    out: Path = typer.Option(None, "--out", help="output directory"),
) -> None:
    """Search a space of networks for one chip (see docs/search.md)."""
    if ctx.invoked_subcommand is not None:
        return
    from netfrontier.errors import OptionError
    from netfrontier.search import run as R

    if worker:
        if not study or not storage:
            raise OptionError("--worker needs --study NAME and --storage URL")
        n = R.run_worker(storage, study, data=data, worker=worker_index, threads=threads,
                         cache_dir=cache_dir,
                         progress=lambda s, c: _say(R.progress_line(s, c, None)))
        _say(f"worker {worker_index}: ran {n} trials")
        return
    if not hw or not data or out is None:
        raise OptionError("netfrontier search needs --hw, --data and --out (or --worker)")
    check_number("trials", trials, lo=1)
    check_number("workers", workers, lo=1, hi=256)
    check_number("limit", limit, lo=1)
    run_search(hw=hw, data=data, objectives=objectives, constraints=constraints,
               flags={"max_latency_ms": max_latency_ms, "max_params": max_params,
                      "max_activation_mb": max_activation_mb, "min_top1": min_top1},
               trials=trials, sampler=sampler, compare_random=compare_random, seed=seed,
               storage=storage, study=study, workers=workers, space_path=space, limit=limit,
               screen=screen, recovery_epochs=recovery_epochs, halving=halving,
               also_hw=[h for h in also_hw.split(",") if h.strip()], baselines=baselines,
               zoo=zoo, threads=threads, out=out)


def run_search(*, hw, data, objectives, constraints, flags, trials, sampler, compare_random,
               seed, storage, study, workers, space_path, limit, screen, recovery_epochs,
               halving, also_hw, baselines, zoo, threads, out, cache_dir=None,
               extra_meta=None) -> dict:
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.search import run as R
    from netfrontier.search.ladder import Evaluator, parse_constraints
    from netfrontier.search.report import finish
    from netfrontier.search.space import SearchSpace, load_space

    t_start = time.time()
    objs = R.parse_objectives(objectives)
    cons = parse_constraints(constraints, **flags)
    spec = get_hardware(hw)
    for h in also_hw:
        get_hardware(h)
    scratch = data in ("fashion-mnist", "digits")
    if space_path is not None:
        base = load_space(space_path)
    else:
        base = SearchSpace(family="convnet" if scratch else "efficientnet_lite")
    sp = base.for_chip(spec)
    cfg = R.SearchConfig(hw=spec.name if not Path(hw).is_file() else str(Path(hw).resolve()),
                         data=data if scratch else str(Path(data).resolve()), objectives=objs,
                         constraints=cons.to_json(), trials=trials, sampler=sampler, seed=seed,
                         space=base.to_json(), limit=limit, screen=screen,
                         recovery_epochs=recovery_epochs, halving=halving, threads=threads)
    ev = Evaluator(sp, spec, cfg.data, limit=limit, threads=threads)
    R.check_optuna()
    R.check_feasible(sp, ev, cons)  # an impossible constraint: said before anything runs
    out = check_out_dir(out)
    ev.cache_dir = Path(cache_dir) if cache_dir else out / "cache"
    url = storage or f"sqlite:///{out.resolve() / 'study.sqlite3'}"
    st = R.open_storage(url)
    name = study or R.default_study_name(cfg, sp.family)
    studies = [(name, cfg)]
    if compare_random and sampler != "random":
        rc = R.SearchConfig(**{**cfg.__dict__, "sampler": "random", "screen": False})
        studies.append((f"{name}-random", rc))
    for n, c in studies:  # a name clash is refused before any trial runs
        R.create_or_resume(st, n, c, say=_say)
    ref = R.reference_cost(sp, ev, cfg)
    for n, c in studies:
        _say(f"study '{n}': {c.sampler} sampler, {c.trials} measured trials on {spec.name}, "
             f"storage {R._safe_url(url)}")
        procs = R.spawn_workers(workers - 1, url, n, None, threads, ev.cache_dir) \
            if workers > 1 else []
        try:
            R.run_worker(url, n, worker=0, threads=threads, cache_dir=ev.cache_dir,
                         progress=lambda s, c2: _say(R.progress_line(s, c2, ref)))
        finally:
            for p in procs:
                p.wait()
    import optuna

    main = optuna.load_study(study_name=name, storage=st)
    rand = optuna.load_study(study_name=f"{name}-random", storage=st) \
        if len(studies) > 1 else None
    res = finish(out, main, cfg, ev, sp, random_study=rand, also_hw=also_hw, zoo=zoo,
                 baselines=baselines, say=_say, started=t_start,
                 extra_meta={"command": " ".join(["netfrontier"] + sys.argv[1:]),
                             "search_s": time.time() - t_start, **(extra_meta or {})})
    rows = [(r["candidate_id"], r["description"], f"{r['top1']:.2f} ± {r['top1_se']:.2f}",
             f"{r['select_top1']:.2f}", f"{r[R.OBJECTIVES[objs[1]][0]]:.4g}")
            for r in res["pareto"]]
    print_table(f"Pareto set on {spec.name} ({res['pareto'][0]['top1_label'] if rows else ''})",
                ("candidate", "architecture", "top-1", "select top-1",
                 f"{objs[1]} ({R.OBJECTIVES[objs[1]][2]})"), rows,
                right=("top-1", "select top-1", f"{objs[1]} ({R.OBJECTIVES[objs[1]][2]})"))
    hv = "; ".join(f"{k} {v:.3f}" for k, v in res["hypervolume"].items())
    _say(f"hypervolume: {hv}")
    _say(f"wrote {out / 'report.html'}, pareto.csv, trials.csv, frontier.png, hypervolume.png")
    return res


@search_app.command("export")
def export(
    trial: int = typer.Argument(..., help="trial number of the study"),
    out: Path = typer.Option(..., "--out", help="net.onnx or net.pt"),
    dir_: Path = typer.Option(None, "--dir", help="the search's --out directory"),
    storage: str = typer.Option(None, "--storage", help="storage URL (instead of --dir)"),
    study: str = typer.Option(None, "--study", help="study name (default: the only one)"),
    data: str = typer.Option(None, "--data", help="images, if not where the search had them"),
) -> None:
    """Rebuild a trial's network (inherited weights, or retrained) and write it."""
    from netfrontier.search.export import export_trial

    path = export_trial(trial, out, directory=dir_, storage=storage, study=study, data=data)
    _say(f"wrote {path}")
