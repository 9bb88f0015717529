"""ImageFolder / MaskFolder: recursion, formats, sizes, seeded augmentation, broken files, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from fastinpaint.data import ImageFolder, InpaintingDataset, MaskFolder, list_images
from fastinpaint.masks import IrregularMaskDataset


@pytest.fixture
def tree(tmp_path):
    """A Places2-like tree: nested class folders, PNG and JPEG, one tiny image, one broken file."""
    rng = np.random.default_rng(0)
    (tmp_path / "a" / "abbey").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(tmp_path / "a" / "abbey" / "1.png")
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "a" / "2.JPG")
    Image.fromarray(rng.integers(0, 256, (10, 12), dtype=np.uint8)).save(tmp_path / "b" / "3.png")  # gray, small
    (tmp_path / "b" / "4.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "b" / "notes.txt").write_text("not an image")
    return tmp_path


def test_lists_recursively_any_pillow_format(tree):
    names = [p.name for p in list_images(tree)]
    assert names == ["2.JPG", "1.png", "3.png", "4.png"]


def test_crops_are_float_in_range_and_seeded(tree):
    ds = ImageFolder(tree, size=32, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = [ds[i] for i in range(3)]
    for x in items:
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(ImageFolder(tree, size=32, seed=1)[0], items[0])
    assert ImageFolder(tree, size=(16, 24), mode="resize")[1].shape == (3, 16, 24)
    assert ImageFolder(tree, size=20, mode="center", hflip=False)[0].shape == (3, 20, 20)
    # index k + len reads the same file with another crop (a new epoch)
    assert not torch.equal(ds[1], ds[1 + len(ds)])


def test_broken_file_is_skipped_with_one_warning(tree):
    ds = ImageFolder(tree, size=8, seed=0)
    with pytest.warns(RuntimeWarning, match="4.png"):
        x = ds[3]
    assert torch.equal(x, ImageFolder(tree, size=8, seed=0)._transform(
        Image.open(tree / "a" / "2.JPG").convert("RGB"), np.random.default_rng([0, 3])))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second time: no warning
        ds[3]


def test_empty_folder_and_all_broken(tmp_path):
    with pytest.raises(ValueError, match="no images found"):
        ImageFolder(tmp_path)
    with pytest.raises(FileNotFoundError):
        ImageFolder(tmp_path / "missing")
    (tmp_path / "x.png").write_bytes(b"junk")
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match="could be read"):
        ImageFolder(tmp_path, size=8)[0]


def test_mask_folder_uses_the_one_mask_rule(tmp_path):
    m = np.zeros((20, 30), np.uint8)
    m[0:2, 0:30] = 127  # grey <= 127: not a hole (the rule of fastinpaint.io)
    m[5:10, 5:25] = 200  # grey > 127: a hole
    Image.fromarray(m).save(tmp_path / "m.png")
    ds = MaskFolder(tmp_path)
    assert ds[0].shape == (1, 20, 30) and ds[0].sum() == 100
    assert MaskFolder(tmp_path, size=40)[0].shape == (1, 40, 40)
    aug = MaskFolder(tmp_path, size=32, augment=True, seed=2)
    assert aug[0].sum() == MaskFolder(tmp_path, size=32)[0].sum()


def test_inpainting_pairs(tree):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        item = InpaintingDataset(ImageFolder(tree, size=24), IrregularMaskDataset(24, seed=0))[0]
    assert item["image"].shape == (3, 24, 24) and item["mask"].shape == (1, 24, 24)
    with pytest.raises(ValueError, match="sizes differ"):
        InpaintingDataset(ImageFolder(tree, size=24), IrregularMaskDataset(16, seed=0))[0]


def test_mask_folder_of_0_1_masks_is_refused_naming_the_file_and_the_rule(tmp_path):
    """A folder of 0/1 masks reads as empty by the rule (grey > 127): it trained with no hole at
    all, silently. The first mask is checked when the folder is opened; a later empty one is
    skipped with a warning naming it (like an unreadable file), not used as a hole-less mask."""
    m = np.zeros((20, 30), np.uint8)
    m[5:10, 5:25] = 1
    for name in ("a.png", "b.png"):
        Image.fromarray(m).save(tmp_path / name)
    with pytest.raises(ValueError, match=r"mask .*a\.png has no hole pixel \(hole = grey > 127; a 0/1 mask"):
        MaskFolder(tmp_path)
    Image.fromarray(m * 255).save(tmp_path / "a.png")
    ds = MaskFolder(tmp_path)
    with pytest.warns(RuntimeWarning, match=r"b\.png has no hole pixel"):
        assert ds[1].sum() == 100  # b.png skipped: a.png, the next usable mask
    with pytest.raises(FileNotFoundError, match="mask folder not found"):
        MaskFolder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no masks found"):
        MaskFolder(tmp_path / "empty")
