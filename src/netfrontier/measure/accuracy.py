"""Top-1 / top-5 on real labelled images, with standard errors and paired comparisons.

Two folder layouts are read:

- imagenet-sample style: `DIR/labels.csv` (`file,class_index,...`) and the images in `DIR/images/`
  (or beside labels.csv);
- ImageNet style: `DIR/<wnid>/*.JPEG`, the class index being the wnid's position in the sorted
  list of the 1,000 ImageNet-1k wnids (shipped in `measure/data/imagenet_wnids.txt`).

Images are decoded once, resized (short side `resize`, bilinear, antialiased) and centre-cropped,
and kept as uint8 (150 MB for 1,000 images at 224 px); normalisation happens per batch. Every
figure carries its standard error sqrt(p(1-p)/n); `paired_difference` gives the difference of two
models on the same images with the standard error of the paired difference, which is much
smaller than either figure's own.
"""
from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from netfrontier.errors import MeasurementError, OptionError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
WNIDS_FILE = Path(__file__).parent / "data" / "imagenet_wnids.txt"


def default_data_dir() -> Path:
    """`../shared/data/imagenet-sample` from the repository root (or $NETFRONTIER_DATA)."""
    env = os.environ.get("NETFRONTIER_DATA")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[3]  # src/netfrontier/measure -> repo root
    return root.parent / "shared" / "data" / "imagenet-sample"


@dataclass(frozen=True)
class Preprocess:
    """Resize the short side to `resize`, centre-crop `crop`, normalise with mean/std (0-1 scale)."""

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @staticmethod
    def for_resolution(res: int, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> "Preprocess":
        """The TF EfficientNet evaluation crop: resize to res + 32, centre-crop res."""
        return Preprocess(resize=res + 32, crop=res, mean=tuple(mean), std=tuple(std))

    def normalize(self, x_uint8):
        import torch

        mean = torch.tensor(self.mean).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(self.std).view(1, 3, 1, 1) * 255.0
        return (x_uint8.float() - mean) / std


@dataclass
class LabelledImages:
    """Decoded images (uint8, N×3×H×W) with their ImageNet class indices and file names."""

    name: str
    images: "object"  # torch.Tensor uint8
    labels: np.ndarray
    files: list[str]
    preprocess: Preprocess

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx, name: str | None = None) -> "LabelledImages":
        idx = np.asarray(idx, dtype=np.int64)
        import torch

        return LabelledImages(name or self.name, self.images[torch.from_numpy(idx)],
                              self.labels[idx], [self.files[i] for i in idx], self.preprocess)

    def split(self, every: int = 2) -> tuple["LabelledImages", "LabelledImages"]:
        """(tune, test): image i goes to `tune` when i % every == 0, else to `test`.

        On imagenet-sample (one image per class, in class order) this gives two disjoint halves
        that each cover every other class evenly.
        """
        i = np.arange(len(self))
        return (self.subset(i[i % every == 0], f"{self.name} [tune split]"),
                self.subset(i[i % every != 0], f"{self.name} [held-out split]"))

    def batches(self, batch_size: int = 50, labels: bool = False) -> Iterator:
        """Normalised float batches (and labels when asked)."""
        import torch

        for s in range(0, len(self), batch_size):
            x = self.preprocess.normalize(self.images[s:s + batch_size])
            if labels:
                yield x, torch.from_numpy(self.labels[s:s + batch_size])
            else:
                yield x


def _read_wnids() -> list[str]:
    return WNIDS_FILE.read_text().split()


NUM_CLASSES = 1000  # ImageNet-1k: every model here predicts these classes


def _class_index(text, path: Path, line: int) -> int:
    try:
        k = int(str(text).strip())
    except ValueError:
        raise MeasurementError(f"{path}, line {line}: class_index {text!r} is not a whole "
                               "number") from None
    if not 0 <= k < NUM_CLASSES:
        raise MeasurementError(f"{path}, line {line}: class_index {k} is outside 0-"
                               f"{NUM_CLASSES - 1} (ImageNet-1k)")
    return k


def _list_dataset(root: Path) -> tuple[list[Path], list[int]]:
    labels_csv = root / "labels.csv"
    if labels_csv.is_file():
        img_dir = root / "images" if (root / "images").is_dir() else root
        files, labels = [], []
        with open(labels_csv, newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"file", "class_index"} <= set(reader.fieldnames):
                raise MeasurementError(f"{labels_csv} needs the columns file,class_index")
            for line, row in enumerate(reader, start=2):
                files.append(img_dir / str(row["file"]))
                labels.append(_class_index(row["class_index"], labels_csv, line))
        return files, labels
    wnid_index = {w: i for i, w in enumerate(_read_wnids())}
    subdirs = sorted(d for d in root.iterdir() if d.is_dir())
    files, labels = [], []
    for d in subdirs:
        if d.name not in wnid_index:
            continue
        for f in sorted(d.iterdir()):
            if f.suffix.lower() in IMAGE_EXTS:
                files.append(f)
                labels.append(wnid_index[d.name])
    if not files:
        raise MeasurementError(f"{root} has neither a labels.csv nor ImageNet wnid folders "
                               "(e.g. n01440764/) with images")
    return files, labels


def load_images(path: str | os.PathLike | None, preprocess: Preprocess = Preprocess(),
                limit: int | None = None, name: str | None = None,
                progress: Callable[[int, int], None] | None = None) -> LabelledImages:
    """Decode a labelled image folder (see module doc); the first `limit` images when given."""
    import torch
    from PIL import Image
    from torchvision.transforms import functional as TF
    from torchvision.transforms import InterpolationMode

    root = Path(path) if path else default_data_dir()
    if not root.is_dir():
        raise MeasurementError(f"data directory '{root}' does not exist")
    if limit is not None and limit < 1:
        raise OptionError(f"--limit must be at least 1, got {limit}")
    files, labels = _list_dataset(root)
    if limit:
        files, labels = files[:limit], labels[:limit]
    out = torch.empty((len(files), 3, preprocess.crop, preprocess.crop), dtype=torch.uint8)
    for i, f in enumerate(files):
        if not f.is_file():
            raise MeasurementError(f"image '{f}' listed in the data set does not exist")
        try:
            with Image.open(f) as im:
                im = im.convert("RGB")
                im = TF.resize(im, preprocess.resize, interpolation=InterpolationMode.BILINEAR,
                               antialias=True)
                im = TF.center_crop(im, preprocess.crop)
                out[i] = TF.pil_to_tensor(im)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise MeasurementError(f"image '{f}' cannot be decoded ({exc})") from None
        if progress:
            progress(i + 1, len(files))
    return LabelledImages(name or root.name, out, np.asarray(labels, np.int64),
                          [f.name for f in files], preprocess)


@dataclass
class Accuracy:
    """Top-1 / top-5 in percent with standard errors, and per-image correctness for pairing."""

    dataset: str
    n: int
    top1: float
    top5: float
    top1_se: float
    top5_se: float
    correct1: np.ndarray = field(repr=False)
    correct5: np.ndarray = field(repr=False)
    logits: object = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "images": self.n, "top1": round(self.top1, 3),
                "top1_se": round(self.top1_se, 3), "top5": round(self.top5, 3),
                "top5_se": round(self.top5_se, 3)}


def standard_error(p_percent: float, n: int) -> float:
    """Binomial standard error of a percentage measured on n images, in points."""
    p = p_percent / 100.0
    return 100.0 * math.sqrt(max(p * (1 - p), 0.0) / n) if n else float("nan")


def paired_difference(a: Accuracy, b: Accuracy) -> tuple[float, float]:
    """(b.top1 - a.top1, its standard error) from per-image correctness on the same images."""
    return paired_correct(a.correct1, b.correct1)


def paired_correct(a, b) -> tuple[float, float]:
    """(b − a top-1 in points, its standard error) from two per-image correctness vectors of
    the same images (booleans, or strings of '0'/'1' as results files keep them)."""
    import numpy as np

    a, b = (np.array([c == "1" for c in v]) if isinstance(v, str) else np.asarray(v)
            for v in (a, b))
    if len(a) != len(b):
        raise MeasurementError(f"paired comparison needs the same images ({len(a)} vs {len(b)})")
    d = b.astype(float) - a.astype(float)
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
    return 100.0 * float(d.mean()), 100.0 * se


def evaluate(model, data: LabelledImages, batch_size: int = 50, threads: int | None = None,
             keep_logits: bool = False, progress: Callable[[int], None] | None = None) -> Accuracy:
    """Top-1 / top-5 of `model` (eval mode, on the device its parameters are on) on `data`."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    model.eval()
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    c1, c5, logits = [], [], []
    with torch.inference_mode():
        for x, y in data.batches(batch_size, labels=True):
            out = model(x.to(dev)).float().cpu()
            if out.ndim != 2 or int(y.max()) >= out.shape[1]:
                raise MeasurementError(f"{data.name}: label {int(y.max())} but the model "
                                       f"gives {tuple(out.shape[1:])} class scores")
            top5 = out.topk(5, dim=1).indices
            c1.append((top5[:, 0] == y).numpy())
            c5.append((top5 == y[:, None]).any(dim=1).numpy())
            if keep_logits:
                logits.append(out)
            if progress:
                progress(len(y))
    c1 = np.concatenate(c1) if c1 else np.zeros(0, bool)
    c5 = np.concatenate(c5) if c5 else np.zeros(0, bool)
    n = len(c1)
    if n == 0:
        raise MeasurementError(f"no images to evaluate in {data.name}")
    t1, t5 = 100.0 * c1.mean(), 100.0 * c5.mean()
    return Accuracy(data.name, n, float(t1), float(t5), standard_error(t1, n),
                    standard_error(t5, n), c1, c5, torch.cat(logits) if keep_logits else None)
