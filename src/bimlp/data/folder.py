"""ImageNet-style image folders: ``ROOT/train/<class>/*.jpg`` and ``ROOT/val/<class>/*.jpg``.

The layout is checked up front, so a wrong path, images lying directly in a split folder or an
empty class folder is one clear error instead of a crash hours later. An image that cannot be
decoded is not an error: its sample comes back as :class:`SkippedSample`, the loader's collate
function drops it from the batch and the training loop warns once per file and reports the
count at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset

__all__ = [
    "DataError",
    "SkippedSample",
    "UndecodableImageWarning",
    "IMAGE_EXTENSIONS",
    "ImageFolderDataset",
    "scan_image_folder",
    "split_folders",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")


class DataError(ValueError):
    """A data set that is missing, empty or laid out wrongly."""


class UndecodableImageWarning(UserWarning):
    """An image file that could not be decoded and was left out."""


@dataclass(frozen=True)
class SkippedSample:
    """Stands in for a sample whose image could not be decoded."""

    path: str
    reason: str


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS


def split_folders(root: str | Path, splits: tuple[str, ...] = ("train", "val")) -> list[Path]:
    """The split folders of an ImageNet-style root, or a :class:`DataError` saying what is there."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder")
    missing = [s for s in splits if not (root / s).is_dir()]
    if missing:
        found = ", ".join(sorted(p.name for p in root.iterdir())[:10]) or "nothing"
        wanted = ", ".join(s + "/" for s in splits)
        raise DataError(
            f"{root}: expected sub-folders {wanted} with one folder per class inside each; "
            f"missing {', '.join(missing)} (found: {found})"
        )
    return [root / s for s in splits]


def scan_image_folder(
    root: str | Path, classes: list[str] | None = None
) -> tuple[list[tuple[str, int]], list[str]]:
    """(path, class index) of every image under ``root/<class>/``, and the sorted class names.

    Args:
        root: one split folder (``train/`` or ``val/``).
        classes: the class list to use (the training split's, for ``val/``); ``None``: the
            sub-folders of ``root``.

    Raises:
        DataError: ``root`` is missing, holds images directly instead of class folders, has no
            class folders, a class folder holds no image, or a class of ``classes`` is absent.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir())
    loose = [p.name for p in root.iterdir() if _is_image(p)]
    if loose and not subdirs:
        raise DataError(
            f"{root}: holds {len(loose)} images directly (e.g. {loose[0]}); expected one "
            f"sub-folder per class, e.g. {root}/<class>/{loose[0]}"
        )
    if not subdirs:
        raise DataError(f"{root}: no class folders (expected {root}/<class>/<image>)")
    if classes is None:
        classes = subdirs
    else:
        absent = [c for c in classes if c not in subdirs]
        extra = [c for c in subdirs if c not in classes]
        if absent or extra:
            raise DataError(
                f"{root}: class folders differ from the training split's"
                + (f"; missing: {', '.join(absent[:10])}" if absent else "")
                + (f"; unknown: {', '.join(extra[:10])}" if extra else "")
            )
    samples: list[tuple[str, int]] = []
    empty = []
    for index, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if _is_image(p))
        if not files:
            empty.append(name)
        samples.extend((str(p), index) for p in files)
    if empty:
        raise DataError(
            f"{root}: {len(empty)} class folder(s) hold no image "
            f"({', '.join(IMAGE_EXTENSIONS)}): {', '.join(str(root / e) for e in empty[:10])}"
        )
    return samples, list(classes)


class ImageFolderDataset(Dataset):
    """Images of a scanned folder as ``(transform(RGB image), label)``.

    An undecodable file gives a :class:`SkippedSample` instead of raising.
    """

    def __init__(
        self,
        root: str | Path,
        transform: Callable | None = None,
        classes: list[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.samples, self.classes = scan_image_folder(root, classes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")  # decodes fully: truncated files fail here
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            return SkippedSample(path, f"{type(e).__name__}: {e}")
        return (self.transform(img) if self.transform else img), label
