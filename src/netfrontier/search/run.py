"""Constrained multi-objective search on Optuna, embedded or scaled out over one database.

A study is an Optuna study in an RDB storage: by default one SQLite file in the output
directory (a laptop needs no server); `--storage postgresql://…` puts it in PostgreSQL, and any
number of `netfrontier search --worker --study NAME --storage URL` processes, on any machines,
pull trials from it (Optuna's own ask/tell on the database: no queue, scheduler or RPC here).
Every process records a heartbeat for its running trial; a trial whose heartbeat stops (a
killed worker) is marked failed by the next process that asks for a trial and re-queued once
as a waiting trial with the same parameters (`RetryHeartbeatStaleTrialCallback`), which the
next free worker runs. The budget is counted in *measured* trials (cost-rejected and screened
ones are free); workers stop when it is reached, waiting for running trials rather than
starting extra ones, so a rerun of the same command resumes a killed search where it stopped.

The study's configuration (space, chip, objectives, constraints, sampler, seed, data) is kept
in its user attributes: a worker needs only the study name and the storage URL, and reusing a
name with another configuration is refused. Each trial stores its candidate (id and knobs),
every cost on the chip, the objectives, the fidelity reached (cost / screened / select /
recovery epochs), the measured top-1 with per-image correctness, its duration and the
environment (host, pid, versions, threads).

Samplers: "tpe" (multi-objective TPE), "nsga2" (NSGA-II), "random" (the baseline), each
seeded; hard limits are Optuna constraints (`trial.set_constraint`, Optuna ≥ 5; the installed
version is checked). Successive halving (`halving`) applies where recovery is trained: after
each epoch a candidate continues only while its select top-1 is in the best 1/η of the
candidates that reached that epoch (asynchronous, as Optuna's pruners cannot prune
multi-objective trials).
"""
from __future__ import annotations

import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from netfrontier.errors import InfeasibleError, OptionError, StoreError
from netfrontier.search.ladder import Constraints, HalvingStop
from netfrontier.search.space import SearchSpace

OBJECTIVES = {"top1": ("top1", "maximize", "%"), "latency": ("latency_ms", "minimize", "ms"),
              "dram": ("dram_mb", "minimize", "MB"), "energy": ("energy_mj", "minimize", "mJ")}
SAMPLERS = ("tpe", "nsga2", "random")
# heartbeat every HEARTBEAT_S seconds; a trial silent for GRACE_S is stale (a dead worker).
# NETFRONTIER_SEARCH_HEARTBEAT="interval,grace" overrides them (the tests use 1,4).
HEARTBEAT_S, GRACE_S = (int(v) for v in os.environ.get("NETFRONTIER_SEARCH_HEARTBEAT",
                                                      "5,20").split(","))
ETA = 3


def parse_objectives(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    for n in names:
        if n not in OBJECTIVES:
            raise OptionError(f"unknown objective '{n}' (use {', '.join(OBJECTIVES)})")
    if "top1" not in names or not 2 <= len(names) <= 3:
        raise OptionError("--objectives is top1 and one or two of latency, dram, energy "
                          f"(got '{text}')")
    return ("top1",) + tuple(n for n in names if n != "top1")


@dataclass(frozen=True)
class SearchConfig:
    hw: str
    data: str
    objectives: tuple = ("top1", "latency")
    constraints: dict = field(default_factory=dict)
    trials: int = 20
    sampler: str = "tpe"
    seed: int = 0
    space: dict = field(default_factory=dict)
    limit: int | None = None
    screen: bool = False
    screen_after: int = 12
    recovery_epochs: int = 0
    halving: bool = False
    threads: int | None = None

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise OptionError(f"unknown sampler '{self.sampler}' (use {', '.join(SAMPLERS)})")
        if self.trials < 1:
            raise OptionError(f"--trials must be at least 1, got {self.trials}")
        if self.recovery_epochs < 0:
            raise OptionError("--recovery-epochs must be ≥ 0")

    @property
    def max_tries(self) -> int:
        return 20 * self.trials + 20

    def to_json(self) -> dict:
        d = asdict(self)
        d["objectives"] = list(self.objectives)
        return d

    @staticmethod
    def from_json(d: dict) -> "SearchConfig":
        d = dict(d)
        d["objectives"] = tuple(d["objectives"])
        return SearchConfig(**d)

    def key(self) -> dict:
        """What must match for a study to be resumed (not threads or the data location)."""
        d = self.to_json()
        d.pop("threads")
        d.pop("data")
        return d


def check_optuna():
    import optuna

    major = int(optuna.__version__.split(".")[0])
    if major < 5:  # trial.set_constraint arrived in Optuna 5; constraints_func before it
        raise OptionError(f"netfrontier search needs Optuna ≥ 5 (installed {optuna.__version__})")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import warnings

    from optuna.exceptions import ExperimentalWarning

    warnings.filterwarnings("ignore", category=ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    return optuna


def _safe_url(url: str) -> str:
    """The URL with any password hidden."""
    import re

    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def open_storage(url: str):
    """An Optuna RDB storage with heartbeats and one retry per stale trial; StoreError when the
    URL is malformed or its database cannot be reached."""
    optuna = check_optuna()
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    scheme = url.split(":", 1)[0]
    kw: dict = {}
    if scheme.startswith("sqlite"):
        kw = {"connect_args": {"timeout": 120}}
        path = url.split(":///", 1)[-1]
        if path and not Path(path).parent.is_dir():
            raise StoreError(f"--storage {url}: the directory {Path(path).parent} does not exist")
    elif scheme.startswith("postgresql"):
        kw = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    else:
        raise StoreError(f"--storage '{_safe_url(url)}': use sqlite:///PATH or "
                         "postgresql://USER@HOST:PORT/DB")
    try:
        return RDBStorage(url, engine_kwargs=kw, heartbeat_interval=HEARTBEAT_S,
                          grace_period=GRACE_S,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                              max_retry=3))
    except Exception as exc:  # sqlalchemy / driver errors: unreachable, refused, bad URL
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"cannot open storage '{_safe_url(url)}': {msg}") from None
    finally:
        del optuna


def _sampler(cfg: SearchConfig, worker: int = 0):
    import optuna

    seed = cfg.seed * 1000 + worker
    if cfg.sampler == "random":  # its own stream: not the TPE start-up trials again
        return optuna.samplers.RandomSampler(seed=seed + 500)
    if cfg.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)
    # random start-up trials: a third of the budget, 3 to 8
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(3, min(8, cfg.trials // 3)),
                                      multivariate=True)


def create_or_resume(storage, name: str, cfg: SearchConfig, say=lambda s: None):
    """The study `name`: created with `cfg`, or resumed when it exists with the same one."""
    import optuna

    try:
        existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    except Exception as exc:
        raise StoreError(f"cannot read studies from the storage: {exc}") from None
    directions = [OBJECTIVES[o][1] for o in cfg.objectives]
    if name in existing:
        study = optuna.load_study(study_name=name, storage=storage, sampler=_sampler(cfg))
        stored = study.user_attrs.get("netfrontier_config")
        if stored is None:
            raise OptionError(f"study '{name}' already exists in the storage and is not a "
                              "netfrontier search: choose another --study")
        def norm(d):  # as JSON stores it (tuples become lists)
            return json.loads(json.dumps(d, sort_keys=True))

        new, old = norm(cfg.key()), norm(SearchConfig.from_json(stored).key())
        if new != old:
            diff = [k for k in new if new[k] != old.get(k)]
            raise OptionError(f"study '{name}' already exists with another configuration "
                              f"({', '.join(diff)} differ): choose another --study, or repeat "
                              "its options to resume it")
        say(f"resuming study '{name}': {len(measured_trials(study))} of {cfg.trials} "
            "measured trials done")
        return study
    study = optuna.create_study(study_name=name, storage=storage, directions=directions,
                                sampler=_sampler(cfg))
    study.set_user_attr("netfrontier_config", cfg.to_json())
    return study


def measured_trials(study, trials=None) -> list:
    import optuna

    trials = trials if trials is not None else study.get_trials(deepcopy=False)
    return [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE
            and t.user_attrs.get("measured")]


def feasible(t) -> bool:
    return all(v <= 0 for v in t.constraints.values())


def environment() -> dict:
    import optuna
    import torch

    return {"host": socket.gethostname(), "pid": os.getpid(), "python": platform.python_version(),
            "torch": torch.__version__, "optuna": optuna.__version__,
            "threads": torch.get_num_threads(), "platform": platform.platform()}


def _objective_values(cfg: SearchConfig, top1: float, cost: dict) -> tuple:
    return tuple(top1 if o == "top1" else cost[OBJECTIVES[o][0]] for o in cfg.objectives)


def make_objective(study, cfg: SearchConfig, space: SearchSpace, ev, screen=None):
    import optuna

    cons = Constraints(**cfg.constraints)
    cost_key = OBJECTIVES[cfg.objectives[1]][0]

    def objective(trial):
        values = {n: trial.suggest_categorical(n, list(ch)) for n, ch in space.knobs().items()}
        c = space.candidate(values)
        trial.set_user_attr("candidate", c.to_json())
        trial.set_user_attr("candidate_id", c.id)
        trial.set_user_attr("environment", environment())
        trial.set_user_attr("measured", False)
        t0 = time.time()
        cost = ev.cost(c)
        trial.set_user_attr("cost", cost)
        trial.set_user_attr("hardware", ev.hw.name)
        viol = cons.cost_violations(cost)
        for k, v in viol.items():
            trial.set_constraint(k, v)
        if any(v > 0 for v in viol.values()):  # rejected by the cost model: nothing built
            if cons.min_top1 is not None:
                trial.set_constraint("min_top1", cons.min_top1)
            trial.set_user_attr("fidelity", "cost")
            trial.set_user_attr("seconds", time.time() - t0)
            return _objective_values(cfg, 0.0, cost)
        done = measured_trials(study)
        prior = next((t for t in done if t.user_attrs.get("candidate_id") == c.id), None)
        cached = ev.measured(c, cfg.recovery_epochs) if prior is None else None
        if prior is not None:  # the same architecture was measured: reuse, never rerun
            m = {k: prior.user_attrs[k] for k in ("select_top1", "select_top1_se", "steps",
                                                  "fidelity")}
            trial.set_user_attr("reused_from", prior.number)
            top1 = m["select_top1"]
        elif cached is not None:  # measured by another study on the same images
            m = {k: cached[k] for k in ("select_top1", "select_top1_se", "steps", "fidelity")}
            trial.set_user_attr("reused_from", "measurement cache")
            top1 = m["select_top1"]
        else:
            if screen is not None:
                v = screen.verdict(c, cost, cost_key,
                                   [(_cand(t), t.user_attrs["cost"],
                                     t.user_attrs["select_top1"]) for t in done])
                if v.get("skip"):
                    trial.set_user_attr("fidelity", "screened")
                    trial.set_user_attr("screen", v)
                    raise optuna.TrialPruned(f"predicted {v['predicted']:.1f} ± "
                                             f"{v['spread']:.1f} below the front's "
                                             f"{v['front']:.1f}")
                if "predicted" in v:
                    trial.set_user_attr("screen", v)
            report = _halving(study, trial) if cfg.halving else None
            r = ev.measure(c, report=report)
            # the network after the best recovery epoch (0: none) is a valid network; a
            # from-scratch one is what its last epoch left
            top1 = r["top1"] if c.family == "convnet" else max(s["top1"] for s in r["steps"])
            m = {"select_top1": top1, "select_top1_se": r["top1_se"], "steps": r["steps"],
                 "fidelity": "select" if r["fidelity"] == 0 or c.family == "convnet"
                 else f"recovery:{r['fidelity']}"}
            if len(r["correct"]) <= 2000:
                trial.set_user_attr("select_correct", r["correct"])
            trial.set_user_attr("select_images", r["images"])
            ev.remember(c, {**m, "select_images": r["images"]}, recovery=cfg.recovery_epochs)
        for k, v in m.items():
            trial.set_user_attr(k, v)
        if cons.min_top1 is not None:
            trial.set_constraint("min_top1", cons.min_top1 - top1)
        trial.set_user_attr("measured", True)
        vals = _objective_values(cfg, top1, cost)
        trial.set_user_attr("objectives", dict(zip(cfg.objectives, vals)))
        trial.set_user_attr("seconds", time.time() - t0)
        return vals

    return objective


def _cand(t):
    from netfrontier.search.space import Candidate

    return Candidate.from_json(t.user_attrs["candidate"])


def _halving(study, trial):
    """Asynchronous successive halving over the measured trials' per-epoch scores."""

    def report(step: int, top1: float) -> None:
        trial.set_user_attr(f"step{step}", top1)
        peers = [t.user_attrs["steps"][step]["top1"] for t in measured_trials(study)
                 if len(t.user_attrs.get("steps", [])) > step]
        if len(peers) >= ETA - 1:
            cut = float(np.quantile(peers + [top1], 1 - 1 / ETA))
            if top1 < cut:
                raise HalvingStop(step)

    return report


def run_worker(storage_url: str, study_name: str, data: str | None = None, worker: int = 0,
               progress=None, threads: int | None = None, cache_dir=None) -> int:
    """Pull and run trials of the study until its budget is reached; returns trials run."""
    optuna = check_optuna()
    from optuna.storages import fail_stale_trials

    from netfrontier.hardware.registry import get_hardware
    from netfrontier.search.ladder import Evaluator
    from netfrontier.search.predictor import Screen
    from netfrontier.search.space import space_from_dict

    storage = open_storage(storage_url)
    try:
        summaries = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    except Exception as exc:
        raise StoreError(f"cannot read studies from the storage: {exc}") from None
    if study_name not in summaries:
        raise OptionError(f"no study '{study_name}' in the storage (studies: "
                          f"{', '.join(sorted(summaries)) or 'none'})")
    probe = optuna.load_study(study_name=study_name, storage=storage)
    stored = probe.user_attrs.get("netfrontier_config")
    if stored is None:
        raise OptionError(f"study '{study_name}' is not a netfrontier search")
    cfg = SearchConfig.from_json(stored)
    study = optuna.load_study(study_name=study_name, storage=storage,
                              sampler=_sampler(cfg, worker))
    hw = get_hardware(cfg.hw)
    space = space_from_dict(cfg.space).for_chip(hw)
    cache = cache_dir or (Path(storage_url.split(":///", 1)[1]).parent / "cache"
                          if storage_url.startswith("sqlite") else None)
    ev = Evaluator(space, hw, data or cfg.data, limit=cfg.limit,
                   threads=threads or cfg.threads, cache_dir=cache,
                   recovery_epochs=cfg.recovery_epochs)
    screen = Screen(after=cfg.screen_after, seed=cfg.seed) \
        if cfg.screen and cfg.sampler != "random" else None
    objective = make_objective(study, cfg, space, ev, screen)
    ran = 0
    while True:
        fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        done = len(measured_trials(study, trials))
        if done >= cfg.trials or len(trials) >= cfg.max_tries:
            break
        states = optuna.trial.TrialState
        running = sum(t.state == states.RUNNING for t in trials)
        waiting = sum(t.state == states.WAITING for t in trials)
        if done + running >= cfg.trials and not waiting:
            time.sleep(1.0)  # the rest are running elsewhere: wait for them (or their retry)
            continue
        study.optimize(objective, n_trials=1, gc_after_trial=False,
                       catch=(), show_progress_bar=False)
        ran += 1
        if progress:
            progress(study, cfg)
    return ran


def spawn_workers(n: int, storage_url: str, study_name: str, data: str | None,
                  threads: int | None, cache_dir=None) -> list[subprocess.Popen]:
    """n local worker processes (the same command a cluster launcher would run)."""
    procs = []
    for i in range(n):
        cmd = [sys.executable, "-c", "from netfrontier.cli import main; main()", "search",
               "--worker", "--study", study_name, "--storage", storage_url,
               "--worker-index", str(i + 1)]
        if data:
            cmd += ["--data", data]
        if threads:
            cmd += ["--threads", str(threads)]
        if cache_dir:
            cmd += ["--cache-dir", str(cache_dir)]
        procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL))
    return procs


def check_feasible(space: SearchSpace, ev, cons: Constraints) -> dict:
    """InfeasibleError when even the cheapest candidate breaks a cost constraint."""
    from netfrontier.search.space import describe

    small = space.extreme(small=True)
    cost = ev.cost(small)
    over = {k: v for k, v in cons.cost_violations(cost).items() if v > 0}
    if over:
        k = next(iter(over))
        unit = {"max_latency_ms": ("latency_ms", "ms"), "max_params": ("params", ""),
                "max_activation_mb": ("activation_mb", "MB")}[k]
        raise InfeasibleError(f"nothing in the space meets {k}={getattr(cons, k):g}: its "
                              f"cheapest candidate ({describe(small)}) has "
                              f"{unit[0]} {cost[unit[0]]:.4g}{unit[1]} on {ev.hw.name} "
                              "(cost model; nothing was trained)")
    return cost


# -- hypervolume ---------------------------------------------------------------------------
def hv_points(trials, cfg: SearchConfig, ref_cost: dict) -> np.ndarray:
    """Measured feasible trials as minimisation points: −top1, log10(cost / reference)."""
    pts = []
    for t in trials:
        vals = t.user_attrs.get("objectives")
        if not vals or not feasible(t):
            continue
        row = [-vals["top1"]]
        for o in cfg.objectives[1:]:
            row.append(math.log10(max(vals[o], 1e-12) / ref_cost[o]))
        pts.append(row)
    return np.array(pts, float).reshape(-1, len(cfg.objectives))


def hypervolume(points: np.ndarray) -> float:
    """Hypervolume dominated by `points` (minimised) against the origin: top-1 points ×
    decades of cost below the reference (× decades for a third objective)."""
    from optuna._hypervolume import compute_hypervolume

    pts = points[(points < 0).all(axis=1)] if len(points) else points
    if not len(pts):
        return 0.0
    return float(compute_hypervolume(pts, np.zeros(pts.shape[1])))


def hv_curve(study, cfg: SearchConfig, ref_cost: dict) -> list[float]:
    """Hypervolume after each measured trial, in trial order."""
    done = sorted(measured_trials(study), key=lambda t: t.number)
    out = []
    for i in range(1, len(done) + 1):
        out.append(hypervolume(hv_points(done[:i], cfg, ref_cost)))
    return out


def reference_cost(space: SearchSpace, ev, cfg: SearchConfig) -> dict:
    """The reference point's cost: 1.1 × the largest candidate's, per cost objective."""
    big = ev.cost(space.extreme(small=False))
    return {o: 1.1 * big[OBJECTIVES[o][0]] for o in cfg.objectives[1:]}


def progress_line(study, cfg: SearchConfig, ref_cost: dict | None) -> str:
    trials = study.get_trials(deepcopy=False)
    done = measured_trials(study, trials)
    ok = [t for t in done if feasible(t)]
    best = max((t.user_attrs["objectives"]["top1"] for t in ok), default=float("nan"))
    hv = f", hypervolume {hypervolume(hv_points(done, cfg, ref_cost)):.3f}" if ref_cost else ""
    last = max(trials, key=lambda t: t.number) if trials else None
    tail = ""
    if last is not None and last.user_attrs.get("candidate_id"):
        tail = (f"; last #{last.number} {last.user_attrs['candidate_id']} "
                f"[{last.user_attrs.get('fidelity', last.state.name.lower())}]")
    return (f"{study.study_name}: {len(done)}/{cfg.trials} measured ({len(trials)} trials), "
            f"best top-1 {best:.2f}{hv}{tail}")


def default_study_name(cfg: SearchConfig, family: str) -> str:
    return f"{family}-{cfg.hw}-{cfg.sampler}-s{cfg.seed}"


def write_json(path, d) -> None:
    from netfrontier.report import write_atomic

    write_atomic(path, json.dumps(d, indent=1, default=float))
