"""Datasets for training inpainting networks: images from a folder tree, masks from a folder.

* :class:`ImageFolder` — every image under a root folder, recursively, in any format Pillow
  reads (the Places2 layout works as is); random crop or resize to the training size, optional
  flips; float tensors ``(3, H, W)`` in [0, 1]. Broken files are skipped with one warning each.
* :class:`MaskFolder` — hole masks from a folder of images, **grey > 127 = hole** (the rule of :mod:`fastinpaint.io`); float tensors
  ``(1, H, W)`` with **1 = hole**.
* :class:`InpaintingDataset` — pairs images with masks (from a folder or generated on the fly by
  :class:`fastinpaint.masks.IrregularMaskDataset`) as ``{"image", "mask"}`` dicts.

Randomness (crops, flips, mask choice) is a function of ``(seed, index)`` only, never of a
global RNG or the worker process, so a run is reproducible with any number of data-loader
workers and across resumes. Indices may exceed ``len(dataset)``: index ``k`` reads file
``k % len`` with the augmentation of ``k``, which is how :class:`fastinpaint.training.SeededSampler`
gives each epoch fresh crops and masks.
"""

from __future__ import annotations

import os
import pathlib
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

Size = Union[int, Tuple[int, int]]


def image_extensions() -> Tuple[str, ...]:
    """The file extensions Pillow can open (lower case, with the dot)."""
    from PIL import Image

    Image.init()
    readable = set(Image.OPEN)
    return tuple(sorted(ext for ext, fmt in Image.registered_extensions().items() if fmt in readable))


def list_images(root: Union[str, os.PathLike], extensions: Optional[Sequence[str]] = None,
                what: str = "image") -> List[pathlib.Path]:
    """All image files under ``root`` (recursive, sorted, following no symlinked folders twice).

    Args:
        root: a folder.
        extensions: extensions to accept (default :func:`image_extensions`), case-insensitive.
        what: what the files are, in errors (``"image"``, ``"mask"``).

    Returns:
        Sorted list of paths.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: no image was found (the message names the folder and the extensions).
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {root}")
    exts = tuple(e.lower() for e in (extensions or image_extensions()))
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.lower().endswith(exts) and not name.startswith("."):
                files.append(pathlib.Path(dirpath) / name)
    if not files:
        shown = ", ".join(e for e in exts if e in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"))
        raise ValueError(f"no {what}s found under {root} (searched recursively for {shown}, …)")
    return files


def _index_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index)])


def _hw(size: Optional[Size]) -> Optional[Tuple[int, int]]:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    return int(size[0]), int(size[1])


class _SkippingReader:
    """Reads item ``k`` of a file list, moving on deterministically past unreadable files."""

    def __init__(self, files: List[pathlib.Path], what: str) -> None:
        self.files = files
        self.what = what
        self._broken: set = set()

    def read(self, index: int, load):
        n = len(self.files)
        for j in range(n):
            path = self.files[(index + j) % n]
            if str(path) in self._broken:
                continue
            try:
                return load(path), (index + j) % n
            except Exception as err:  # any decoder error: never crash a long run
                self._broken.add(str(path))
                warnings.warn(f"skipping unusable {self.what} {path}: {type(err).__name__}: {err}",
                              RuntimeWarning, stacklevel=3)
        raise RuntimeError(f"none of the {n} {self.what} files could be read (first: {self.files[0]})")


def _open_rgb(path: pathlib.Path):
    from PIL import Image

    from fastinpaint import io as fio

    return Image.fromarray(fio.to_rgb8(fio.read_image(path).pixels))


class ImageFolder(torch.utils.data.Dataset):
    """Images under a folder tree, as training crops.

    Args:
        root: folder searched recursively (any extension Pillow reads).
        size: training size ``S`` or ``(H, W)``; None keeps each image's own size (batch size 1
            or equal-size images only).
        mode: ``"crop"`` (default) — a random ``H×W`` crop, after an upscale when the image is
            smaller; ``"resize"`` — the whole image resized to ``H×W``; ``"center"`` — resized
            so that it covers ``H×W``, then the centre crop (deterministic, for validation).
        hflip: random horizontal flips.
        vflip: random vertical flips.
        seed: seed of the augmentation (item ``k`` always gets the same crop and flips).
        extensions: restrict to these extensions.

    Returns (per item):
        ``torch.float32`` tensor ``(3, H, W)`` in [0, 1].

    Raises:
        ValueError: the folder holds no image. Unreadable files are skipped (one
        ``RuntimeWarning`` per file) and replaced by the next readable one.

    Example:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> from fastinpaint.data import ImageFolder
        >>> root = tempfile.mkdtemp()                          # e.g. "places365/train"
        >>> for i in range(3):
        ...     Image.fromarray(np.random.randint(0, 256, (300, 400, 3), np.uint8)).save(f"{root}/{i}.jpg")
        >>> ds = ImageFolder(root, size=256, hflip=True, seed=0)
        >>> len(ds), ds[0].shape
        (3, torch.Size([3, 256, 256]))
    """

    MODES = ("crop", "resize", "center")

    def __init__(self, root: Union[str, os.PathLike], size: Optional[Size] = 256, mode: str = "crop",
                 hflip: bool = True, vflip: bool = False, seed: int = 0,
                 extensions: Optional[Sequence[str]] = None) -> None:
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        self.root = pathlib.Path(root)
        self.files = list_images(root, extensions)
        self.size = _hw(size)
        self.mode = mode
        self.hflip = hflip
        self.vflip = vflip
        self.seed = int(seed)
        self._reader = _SkippingReader(self.files, "image")

    def __len__(self) -> int:
        return len(self.files)

    def _transform(self, im, rng: np.random.Generator):
        from PIL import Image

        if self.size is not None:
            th, tw = self.size
            w, h = im.size
            if self.mode == "resize":
                im = im.resize((tw, th), Image.BICUBIC)
            else:
                scale = max(th / h, tw / w)
                if self.mode == "center":
                    nw, nh = max(tw, round(w * scale)), max(th, round(h * scale))
                    im = im.resize((nw, nh), Image.BICUBIC)
                    left, top = (nw - tw) // 2, (nh - th) // 2
                else:
                    if scale > 1:
                        nw, nh = max(tw, round(w * scale)), max(th, round(h * scale))
                        im = im.resize((nw, nh), Image.BICUBIC)
                    w, h = im.size
                    left = int(rng.integers(0, w - tw + 1))
                    top = int(rng.integers(0, h - th + 1))
                im = im.crop((left, top, left + tw, top + th))
        arr = np.array(im, dtype=np.uint8)  # a writable copy
        if self.hflip and rng.random() < 0.5:
            arr = arr[:, ::-1]
        if self.vflip and rng.random() < 0.5:
            arr = arr[::-1]
        return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).to(torch.float32).div_(255.0)

    def __getitem__(self, index: int) -> torch.Tensor:
        index = int(index)
        im, _ = self._reader.read(index % len(self.files), _open_rgb)
        return self._transform(im, _index_rng(self.seed, index))


def _open_mask(path: pathlib.Path) -> np.ndarray:
    from fastinpaint import io as fio

    # the one mask rule (grey > 127 = hole); a training mask without a hole is refused, naming the rule
    return fio.require_hole(fio.read_mask(path), path)


class MaskFolder(torch.utils.data.Dataset):
    """Hole masks from a folder of images (recursive), **grey > 127 = hole** (the rule of :mod:`fastinpaint.io`).

    Args:
        root: folder of mask images (e.g. written by ``fastinpaint masks``).
        size: resize (nearest neighbour) to ``S`` or ``(H, W)``; None keeps each mask's size.
        augment: random flips and 90° rotations (square sizes only for rotations), seeded per
            index.
        seed: augmentation seed.

    Returns (per item):
        ``torch.float32`` tensor ``(1, H, W)``, **1 = hole**, 0 = valid.

    Raises:
        FileNotFoundError / ValueError: no such folder, or no mask in it.
        ImageIOError: the first mask (checked here, cheaply) has no hole pixel — most often a
        folder of 0/1 masks, which the rule reads as empty (scale them to 0/255). A later mask
        with no hole, like an unreadable one, is skipped with a ``RuntimeWarning`` naming it and
        the rule: an error there would end a long run far from its start.

    Example:
        >>> import tempfile
        >>> from fastinpaint.data import MaskFolder
        >>> from fastinpaint.masks import write_mask_set
        >>> root = tempfile.mkdtemp()                          # e.g. "masks_10_20"
        >>> paths = write_mask_set(root, 4, 128, (0.1, 0.2), seed=0)
        >>> masks = MaskFolder(root, size=256)
        >>> masks[0].shape, masks[0].unique()
        (torch.Size([1, 256, 256]), tensor([0., 1.]))
    """

    def __init__(self, root: Union[str, os.PathLike], size: Optional[Size] = None, augment: bool = False,
                 seed: int = 0) -> None:
        self.root = pathlib.Path(root)
        self.files = list_images(root, what="mask")
        self.size = _hw(size)
        self.augment = augment
        self.seed = int(seed)
        self._reader = _SkippingReader(self.files, "mask")
        # Now, before any training: a folder of 0/1 masks would otherwise train with no holes.
        from fastinpaint import io as fio

        try:
            first = fio.read_mask(self.files[0])
        except Exception:  # unreadable: skipped with a warning when drawn, as any unreadable file
            first = None
        if first is not None:
            fio.require_hole(first, self.files[0])

    def __len__(self) -> int:
        return len(self.files)

    def mask(self, index: int) -> np.ndarray:
        """Mask ``index`` as a bool array ``(H, W)``, True = hole (after resize/augmentation)."""
        from PIL import Image

        index = int(index)
        m, _ = self._reader.read(index % len(self.files), _open_mask)
        if self.size is not None and m.shape != self.size:
            im = Image.fromarray(m.astype(np.uint8) * 255).resize((self.size[1], self.size[0]), Image.NEAREST)
            m = np.asarray(im) > 127
        if self.augment:
            rng = _index_rng(self.seed, index)
            if rng.random() < 0.5:
                m = m[:, ::-1]
            if rng.random() < 0.5:
                m = m[::-1]
            if m.shape[0] == m.shape[1]:
                m = np.rot90(m, int(rng.integers(4)))
        return np.ascontiguousarray(m)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.mask(index)).to(torch.float32).unsqueeze(0)


class InpaintingDataset(torch.utils.data.Dataset):
    """Pairs of an image and a hole mask for training: ``{"image": (3,H,W), "mask": (1,H,W)}``.

    Item ``k``: image ``k`` of ``images`` and mask ``k`` of ``masks`` (both datasets accept any
    non-negative index; a :class:`MaskFolder` wraps around, so masks pair with different images
    across epochs when the counts differ).

    Args:
        images: e.g. :class:`ImageFolder` (float ``(3, H, W)`` in [0, 1]).
        masks: :class:`MaskFolder` or :class:`fastinpaint.masks.IrregularMaskDataset`
            (``(1, H, W)``, **1 = hole**), of the same spatial size as the images.

    Example:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> from fastinpaint.data import ImageFolder, InpaintingDataset
        >>> from fastinpaint.masks import IrregularMaskDataset
        >>> photos = tempfile.mkdtemp()                        # e.g. "photos"
        >>> Image.fromarray(np.random.randint(0, 256, (300, 400, 3), np.uint8)).save(f"{photos}/a.png")
        >>> ds = InpaintingDataset(ImageFolder(photos, 256), IrregularMaskDataset(256, seed=1))
        >>> batch = ds[0]; batch["image"].shape, batch["mask"].shape
        (torch.Size([3, 256, 256]), torch.Size([1, 256, 256]))
    """

    def __init__(self, images, masks) -> None:
        self.images = images
        self.masks = masks

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        image = self.images[index]
        mask = self.masks[index]
        if image.shape[-2:] != mask.shape[-2:]:
            raise ValueError(f"image {tuple(image.shape[-2:])} and mask {tuple(mask.shape[-2:])} sizes differ "
                             f"(give both datasets the same size)")
        return {"image": image, "mask": mask}


__all__ = ["ImageFolder", "MaskFolder", "InpaintingDataset", "list_images", "image_extensions"]
