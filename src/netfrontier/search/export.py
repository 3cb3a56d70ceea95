"""`netfrontier search export TRIAL --out net.onnx|net.pt`: a trial's network, rebuilt.

Lite candidates are rebuilt from the parent's weights exactly as the trial built them (the
same surgery and folding on the same tune images); from-scratch candidates are retrained with
their seed (derived from the candidate id, so the same weights on the same machine and
library versions). `.pt` is a state dict with the candidate beside it (loads with
`torch.load(weights_only=True)`); `.onnx` is a float ONNX graph at the candidate's input size.
"""
from __future__ import annotations

from pathlib import Path

import torch

from netfrontier.errors import OptionError


def export_trial(trial: int, out, directory=None, storage: str | None = None,
                 study: str | None = None, data: str | None = None) -> Path:
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.search import run as R
    from netfrontier.search.build import input_shape
    from netfrontier.search.ladder import Evaluator
    from netfrontier.search.space import Candidate, space_from_dict

    out = Path(out)
    if out.suffix not in (".onnx", ".pt"):
        raise OptionError(f"--out '{out}': use a .onnx or .pt file name")
    if not out.parent.is_dir() and str(out.parent) not in ("", "."):
        raise OptionError(f"--out '{out}': the directory {out.parent} does not exist")
    if (directory is None) == (storage is None):
        raise OptionError("give the search's --dir or its --storage URL")
    if directory is not None:
        db = Path(directory) / "study.sqlite3"
        if not db.is_file():
            raise OptionError(f"--dir '{directory}' holds no study.sqlite3")
        storage = f"sqlite:///{db.resolve()}"
    optuna = R.check_optuna()
    st = R.open_storage(storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(st)]
    if study is None:
        mains = [n for n in names if not n.endswith("-random")] or names
        if len(mains) != 1:
            raise OptionError(f"the storage holds {len(names)} studies: name one with --study "
                              f"({', '.join(names)})")
        study = mains[0]
    if study not in names:
        raise OptionError(f"no study '{study}' (studies: {', '.join(names) or 'none'})")
    s = optuna.load_study(study_name=study, storage=st)
    by_number = {t.number: t for t in s.get_trials(deepcopy=False)}
    t = by_number.get(trial)
    if t is None or "candidate" not in t.user_attrs:
        raise OptionError(f"study '{study}' has no trial {trial} with a candidate "
                          f"(trials 0-{max(by_number, default=-1)})")
    cfg = R.SearchConfig.from_json(s.user_attrs["netfrontier_config"])
    hw = get_hardware(cfg.hw)
    space = space_from_dict(cfg.space).for_chip(hw)
    c = Candidate.from_json(t.user_attrs["candidate"])
    cache = Path(storage.split(":///", 1)[1]).parent / "cache" \
        if storage.startswith("sqlite") else None
    ev = Evaluator(space, hw, data or cfg.data, limit=cfg.limit, cache_dir=cache)
    model = ev.build(c) if c.family != "convnet" else ev._retrain(c)
    model.eval()
    if out.suffix == ".pt":
        tmp = out.with_name(f".{out.name}.tmp")
        torch.save({"candidate": c.id, "state_dict": model.state_dict()}, tmp)
        tmp.replace(out)
    else:
        x = torch.randn(*input_shape(c, space.deploy_resolution))
        tmp = out.with_name(f".{out.name}.tmp.onnx")
        torch.onnx.export(model, (x,), str(tmp), input_names=["input"], output_names=["logits"],
                          dynamo=False)
        tmp.replace(out)
    return out
