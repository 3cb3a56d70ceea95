"""Iterative magnitude pruning and lottery tickets (Frankle & Carbin, ICLR 2019).

Train dense; remove the smallest-magnitude fraction of the remaining weights (per layer, or
globally across layers); rewind the survivors to their values at initialisation, or at an early
iteration k (Frankle et al. 2020, "Linear Mode Connectivity and the Lottery Ticket Hypothesis");
retrain; repeat. The hypothesis' test compares, at each sparsity: (a) the winning ticket (mask
and rewound weights), (b) the same mask with a fresh random initialisation, (c) a random mask of
the same per-layer sparsity, also freshly initialised. Masks are kept by re-applying them after
every optimiser step (pruned weights stay exactly zero). Biases and batch norms are not pruned.

Data sets small enough to train from scratch on 2 CPU cores: Fashion-MNIST (Debian's
`dataset-fashion-mnist`, 60k/10k 28×28 images) and scikit-learn's bundled digits (1,797 8×8
images, for seconds-long tests). Models: LeNet-300-100 and Conv-2 (two 3×3 convs, a pool, two
fully connected layers), as in the paper.
"""
from __future__ import annotations

import copy
import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from netfrontier.errors import MeasurementError, OptionError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
MODELS = ("lenet300", "conv2")
DATASETS = ("fashion-mnist", "digits")


@dataclass
class Split:
    x: torch.Tensor  # N×1×H×W float, standardised
    y: torch.Tensor


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_dataset(name: str, limit_train: int | None = None) -> tuple[Split, Split]:
    """(train, test) of Fashion-MNIST or digits, pixel values standardised by the train set."""
    if name == "fashion-mnist":
        root = Path(os.environ.get("NETFRONTIER_FASHION_MNIST", FASHION_DIR))
        try:
            xtr, ytr = _idx(root / "train-images-idx3-ubyte.gz"), _idx(root / "train-labels-idx1-ubyte.gz")
            xte, yte = _idx(root / "t10k-images-idx3-ubyte.gz"), _idx(root / "t10k-labels-idx1-ubyte.gz")
        except (OSError, EOFError, IndexError, ValueError) as exc:
            raise MeasurementError(f"Fashion-MNIST is not readable under {root} ({exc}); "
                                   "install Debian's dataset-fashion-mnist") from None
    elif name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x, y = d.images.astype(np.float32), d.target
        order = np.random.default_rng(0).permutation(len(y))  # fixed split: 1,297 / 500
        xtr, ytr, xte, yte = x[order[500:]], y[order[500:]], x[order[:500]], y[order[:500]]
    else:
        raise OptionError(f"unknown data set '{name}' (use {', '.join(DATASETS)})")
    if limit_train:
        xtr, ytr = xtr[:limit_train], ytr[:limit_train]
    xtr, xte = xtr.astype(np.float32), xte.astype(np.float32)
    mean, std = xtr.mean(), xtr.std()

    def split(x, y):
        return Split(torch.from_numpy((x - mean) / std)[:, None], torch.from_numpy(
            np.asarray(y, np.int64)))

    return split(xtr, ytr), split(xte, yte)


def build(name: str, side: int, classes: int = 10) -> nn.Module:
    """LeNet-300-100 or Conv-2 for `side`×`side` single-channel images."""
    if name == "lenet300":
        return nn.Sequential(nn.Flatten(), nn.Linear(side * side, 300), nn.ReLU(),
                             nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, classes))
    if name == "conv2":
        return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(32 * (side // 2) ** 2, 256), nn.ReLU(),
                             nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, classes))
    raise OptionError(f"unknown lottery model '{name}' (use {', '.join(MODELS)})")


def prunable(model: nn.Module) -> dict[str, nn.Parameter]:
    """The weights IMP prunes: every conv and linear weight (not biases)."""
    return {n: m.weight for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for n, w in prunable(model).items():
            w.mul_(masks[n])


def density(masks: dict[str, torch.Tensor]) -> float:
    """Fraction of prunable weights kept."""
    kept = sum(int(m.sum()) for m in masks.values())
    return kept / sum(m.numel() for m in masks.values())


def magnitude_masks(model: nn.Module, masks: dict[str, torch.Tensor], rate: float,
                    scope: str = "layer", last_rate: float | None = None) -> dict:
    """Remove `rate` of each layer's remaining weights (the output layer `last_rate`, as the
    paper halves it), or, `scope` "global", `rate` of all remaining weights together."""
    weights = prunable(model)
    names = list(weights)
    if scope == "global":
        alive = torch.cat([weights[n].detach().abs()[masks[n].bool()] for n in names])
        k = int(rate * alive.numel())
        cut = torch.kthvalue(alive, k).values if k > 0 else -1.0
        return {n: (masks[n].bool() & (weights[n].detach().abs() > cut)).float() for n in names}
    out = {}
    for n in names:
        r = last_rate if (last_rate is not None and n == names[-1]) else rate
        alive = weights[n].detach().abs()[masks[n].bool()]
        k = int(r * alive.numel())
        cut = torch.kthvalue(alive, k).values if k > 0 else -1.0
        out[n] = (masks[n].bool() & (weights[n].detach().abs() > cut)).float()
    return out


def random_masks(like: dict[str, torch.Tensor], gen: torch.Generator) -> dict:
    """Random masks with the same number of kept weights per layer."""
    out = {}
    for n, m in like.items():
        keep = int(m.sum())
        flat = torch.zeros(m.numel())
        flat[torch.randperm(m.numel(), generator=gen)[:keep]] = 1
        out[n] = flat.view_as(m)
    return out


def train(model: nn.Module, masks: dict, data: Split, epochs: int, lr: float, batch: int,
          gen: torch.Generator, snapshot_at: int | None = None) -> dict | None:
    """Adam on cross-entropy, masks re-applied after each step; returns the state at iteration
    `snapshot_at` (for late rewinding) when asked."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    apply_masks(model, masks)
    snap, step = None, 0
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(data.y), generator=gen)
        for s in range(0, len(perm), batch):
            if snapshot_at is not None and step == snapshot_at:
                snap = copy.deepcopy(model.state_dict())
            idx = perm[s:s + batch]
            loss = nn.functional.cross_entropy(model(data.x[idx]), data.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            apply_masks(model, masks)
            step += 1
    model.eval()
    return snap


def accuracy(model: nn.Module, data: Split) -> float:
    with torch.no_grad():
        pred = torch.cat([model(data.x[s:s + 1000]).argmax(1) for s in range(0, len(data.y), 1000)])
    return 100.0 * float((pred == data.y).float().mean())


@dataclass(frozen=True)
class LotteryConfig:
    model: str = "lenet300"
    dataset: str = "fashion-mnist"
    rounds: int = 9  # 0.7^9 ≈ 4% of the weights at rate 0.3
    rate: float = 0.3
    last_rate: float | None = 0.15
    scope: str = "layer"
    epochs: int = 3
    lr: float = 1.2e-3
    batch: int = 60
    rewind_iter: int = 0  # 0: to initialisation; k: to iteration k of the dense training
    seeds: tuple[int, ...] = (0, 1, 2)
    limit_train: int | None = None

    def __post_init__(self):
        if self.model not in MODELS:
            raise OptionError(f"unknown lottery model '{self.model}' (use {', '.join(MODELS)})")
        if self.dataset not in DATASETS:
            raise OptionError(f"unknown data set '{self.dataset}' (use {', '.join(DATASETS)})")
        if not 0 < self.rate < 1 or self.rounds < 1 or self.epochs < 1:
            raise OptionError("lottery: rate must be in (0, 1), rounds and epochs at least 1")
        if self.scope not in ("layer", "global"):
            raise OptionError(f"lottery scope must be layer or global, got '{self.scope}'")
        if self.rewind_iter < 0:
            raise OptionError("--rewind must be a non-negative iteration")


def run_lottery(cfg: LotteryConfig, progress: Callable[[str], None] = lambda s: None
                ) -> list[dict]:
    """One row per (seed, round, condition): density and test accuracy."""
    train_set, test_set = load_dataset(cfg.dataset, cfg.limit_train)
    side = train_set.x.shape[-1]
    rows = []
    for seed in cfg.seeds:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = build(cfg.model, side)
        init = copy.deepcopy(model.state_dict())
        masks = {n: torch.ones_like(w) for n, w in prunable(model).items()}
        snap = train(model, masks, train_set, cfg.epochs, cfg.lr, cfg.batch, gen,
                     snapshot_at=cfg.rewind_iter or None)
        rewind = snap if cfg.rewind_iter else init
        rows.append({"seed": seed, "round": 0, "condition": "dense", "density": 1.0,
                     "accuracy": accuracy(model, test_set)})
        progress(f"seed {seed}: dense {rows[-1]['accuracy']:.2f}%")
        for r in range(1, cfg.rounds + 1):
            masks = magnitude_masks(model, masks, cfg.rate, cfg.scope, cfg.last_rate)
            d = density(masks)
            model.load_state_dict(rewind)
            train(model, masks, train_set, cfg.epochs, cfg.lr, cfg.batch, gen)
            rows.append({"seed": seed, "round": r, "condition": "winning ticket", "density": d,
                         "accuracy": accuracy(model, test_set),
                         "layer_density": {n: float(m.mean()) for n, m in masks.items()}})
            for cond, m in (("same mask, random init", masks),
                            ("random mask, random init", random_masks(masks, gen))):
                other = build(cfg.model, side)  # a fresh initialisation from the seeded stream
                train(other, m, train_set, cfg.epochs, cfg.lr, cfg.batch, gen)
                rows.append({"seed": seed, "round": r, "condition": cond, "density": d,
                             "accuracy": accuracy(other, test_set)})
            progress(f"seed {seed} round {r}: {100 * d:.1f}% of weights, ticket "
                     f"{rows[-3]['accuracy']:.2f}%, reinit {rows[-2]['accuracy']:.2f}%, "
                     f"random mask {rows[-1]['accuracy']:.2f}%")
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Mean, standard deviation and range over seeds per (round, condition)."""
    out = {}
    for r in rows:
        out.setdefault((r["round"], r["condition"]), []).append(r)
    table = []
    for (rnd, cond), rs in sorted(out.items()):
        acc = np.array([r["accuracy"] for r in rs])
        table.append({"round": rnd, "condition": cond,
                      "density": float(np.mean([r["density"] for r in rs])),
                      "accuracy_mean": float(acc.mean()),
                      "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                      "accuracy_min": float(acc.min()), "accuracy_max": float(acc.max()),
                      "seeds": len(rs)})
    return table
