"""Irregular mask generator: buckets met, seeds reproduce, border constraint, files and CLI."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from fastinpaint import masks as fm
from fastinpaint.cli import masks as masks_cli


@pytest.mark.parametrize("border", [False, True])
@pytest.mark.parametrize("bucket", fm.BUCKETS)
def test_ratio_falls_in_bucket(bucket, border):
    lo, hi = bucket
    for seed in range(6):
        for size in (512, (96, 160)):
            m = fm.generate_mask(size, bucket, seed=seed, border=border)
            assert m.dtype == np.bool_ and m.shape == ((512, 512) if size == 512 else size)
            assert lo < m.mean() <= hi, (bucket, border, seed, size, m.mean())


@pytest.mark.parametrize("bucket", fm.BUCKETS)
def test_border_constraint_holds(bucket):
    for seed in range(4):
        m = fm.generate_mask(256, bucket, seed=seed, border=True, margin=12)
        assert not m[:12].any() and not m[-12:].any() and not m[:, :12].any() and not m[:, -12:].any()
        d = fm.default_margin(256, 256)
        m = fm.generate_mask(256, bucket, seed=seed, border=True)
        assert not m[:d].any() and not m[-d:].any() and not m[:, :d].any() and not m[:, -d:].any()


def test_free_masks_do_reach_the_border():
    assert any(fm.generate_mask(256, (0.3, 0.4), seed=s)[[0, -1]].any() for s in range(5))


def test_seeds_reproduce_and_differ():
    a = fm.generate_mask(128, (0.2, 0.3), seed=42)
    assert np.array_equal(a, fm.generate_mask(128, (0.2, 0.3), seed=42))
    assert not np.array_equal(a, fm.generate_mask(128, (0.2, 0.3), seed=43))
    ds = fm.IrregularMaskDataset(64, seed=7)
    assert torch.equal(ds[11], fm.IrregularMaskDataset(64, seed=7)[11])
    assert ds[11].shape == (1, 64, 64) and ds[11].dtype == torch.float32
    assert fm.BUCKETS[11 % 6][0] < ds[11].mean() <= fm.BUCKETS[11 % 6][1]


def test_masks_are_irregular_not_noise():
    from scipy import ndimage

    m = fm.generate_mask(256, (0.3, 0.4), seed=0)
    _, n = ndimage.label(m)
    assert n < 60  # a few connected strokes/blobs, not scattered pixels


def test_bad_arguments():
    with pytest.raises(ValueError, match="lo < hi"):
        fm.generate_mask(64, (0.3, 0.2))
    with pytest.raises(ValueError, match="too small"):
        fm.generate_mask(8, (0.01, 0.011))
    with pytest.raises(ValueError, match="border"):
        fm.generate_mask(64, (0.5, 0.6), border=True, margin=20)
    with pytest.raises(ValueError, match="bad bucket"):
        fm.parse_bucket("0.1")


def test_write_mask_set_and_refuse_overwrite(tmp_path):
    paths = fm.write_mask_set(tmp_path, 4, (40, 64), [(0.1, 0.2), (0.4, 0.5)], seed=3, border=True)
    assert len(paths) == 4
    rows = list(csv.DictReader(open(tmp_path / "manifest.csv")))
    assert [r["mask"] for r in rows] == [p.name for p in paths]
    for p, r in zip(paths, rows):
        arr = np.asarray(Image.open(p))
        assert arr.shape == (40, 64) and set(np.unique(arr)) <= {0, 255}
        lo, hi = map(float, r["bucket"].split("-"))
        assert lo < (arr == 255).mean() <= hi
    before = np.asarray(Image.open(paths[1]))
    with pytest.raises(FileExistsError, match="pass overwrite=True to replace them$"):
        fm.write_mask_set(tmp_path, 4, (40, 64), [(0.1, 0.2), (0.4, 0.5)], seed=9, border=True)
    assert np.array_equal(np.asarray(Image.open(paths[1])), before)  # untouched
    fm.write_mask_set(tmp_path, 4, (40, 64), [(0.1, 0.2), (0.4, 0.5)], seed=3, border=True, overwrite=True)
    assert np.array_equal(np.asarray(Image.open(paths[1])), before)  # same seed, same mask


def test_cli_module_and_subcommand(tmp_path, capsys):
    out = tmp_path / "m"
    assert masks_cli.main(["--out", str(out), "--count", "3", "--size", "64", "--bucket", "0.2-0.3", "--seed", "1"]) == 0
    assert len(list(out.glob("*.png"))) == 3
    assert masks_cli.main(["--out", str(out), "--count", "3", "--size", "64"]) == 1  # refuses to overwrite
    err = capsys.readouterr().err
    assert "already exist" in err and "pass --overwrite to replace them" in err
    assert "overwrite=True" not in err  # the API's argument is no use on the command line
    import argparse

    parser = argparse.ArgumentParser(prog="fastinpaint")
    masks_cli.add_subcommand(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["masks", "--out", str(out), "--count", "2", "--size", "64", "--bucket", "0.5-0.6",
                              "--border", "--overwrite"])
    assert args.func(args) == 0
    m = np.asarray(Image.open(next(out.glob("mask_0.5-0.6_border_*.png"))))
    assert 0.5 < (m > 0).mean() <= 0.6


def test_python_dash_m(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "fastinpaint.masks", "--out", str(tmp_path), "--count", "1",
                        "--size", "32"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "manifest.csv").is_file()


def test_grow_and_shrink_correction_is_exact():
    # one shape only: the boundary correction must grow the hole into the bucket
    for bucket in ((0.5, 0.6), (0.3, 0.4)):
        for border in (False, True):
            m = fm.generate_mask(128, bucket, seed=5, border=border, max_shapes=1)
            assert bucket[0] < m.mean() <= bucket[1]
    rng = np.random.default_rng(0)
    hole = np.zeros((50, 60), bool)
    hole[10:40, 10:50] = True
    allowed = np.zeros_like(hole)
    allowed[5:45, 5:55] = True
    assert fm._adjust_count(hole, allowed, 500, rng).sum() == 500
    grown = fm._adjust_count(hole, allowed, 1500, rng)
    assert grown.sum() == 1500 and not grown[~allowed].any() and grown[hole].all()


def test_parse_size_caps_the_side():
    """A mask side beyond MAX_MASK_SIDE is refused (100000 drew 24 GB before the kernel killed it)."""
    from fastinpaint.masks import MAX_MASK_SIDE, parse_size

    assert parse_size(f"{MAX_MASK_SIDE}x8") == (MAX_MASK_SIDE, 8)
    for text in ("100000", f"8x{MAX_MASK_SIDE + 1}"):
        with pytest.raises(ValueError, match=f"at most {MAX_MASK_SIDE} pixels a side"):
            parse_size(text)


def test_margin_is_checked_and_needs_border(tmp_path, capsys):
    """--margin -5 said it 'leaves no room'; --margin without --border was silently ignored."""
    for argv, words in ((["--border", "--margin", "-5"], "--margin must be >= 0"),
                        (["--margin", "8"], "it needs --border")):
        assert masks_cli.main(["--out", str(tmp_path / "m"), "--count", "1", "--size", "32", *argv]) == 1
        assert words in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_overwrite_replaces_the_set_without_touching_other_files(tmp_path):
    """--overwrite with a different set: the old set's masks go (they were left beside a manifest
    listing only the new ones); a file the manifest does not name stays."""
    out = tmp_path / "m"
    old = fm.write_mask_set(out, 3, 32, (0.1, 0.2), seed=0)
    (out / "mine.png").write_bytes(b"a user's file")
    new = fm.write_mask_set(out, 2, 32, (0.2, 0.3), seed=1, overwrite=True)
    assert sorted(p.name for p in out.glob("mask_*.png")) == sorted(p.name for p in new)
    assert not any(p.exists() for p in old) and (out / "mine.png").read_bytes() == b"a user's file"
    with open(out / "manifest.csv", newline="") as f:
        assert [r["mask"] for r in csv.DictReader(f)] == [p.name for p in new]


def test_masks_for_an_image_folder_pair_with_eval(tmp_path, capsys):
    """`masks --images DIR`: one mask set per image, of its size, named IMAGE__BUCKET_J.png, so that
    `eval --images DIR --masks OUT` pairs them (masks' names matched no image, and had one size)."""
    from fastinpaint.evaluate import load_pairs, match_pairs

    imgs, out = tmp_path / "photos", tmp_path / "m"
    imgs.mkdir()
    Image.new("RGB", (40, 30), (90, 120, 30)).save(imgs / "cat.png")
    Image.new("RGB", (24, 36), (10, 20, 200)).save(imgs / "dog.jpg")
    assert masks_cli.main(["--out", str(out), "--images", str(imgs), "--count", "2", "--bucket", "0.1-0.2;0.2-0.3"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote 4 masks to {out} for the images of {imgs} (manifest.csv)"
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["cat__0.1-0.2_0.png", "cat__0.2-0.3_1.png", "dog__0.1-0.2_0.png", "dog__0.2-0.3_1.png"]
    (out / "manifest.csv").rename(tmp_path / "manifest.csv")  # the pairing by name alone
    assert [(i.name, m.name) for i, m in match_pairs(imgs, out)] == [
        ("cat.png", "cat__0.1-0.2_0.png"), ("cat.png", "cat__0.2-0.3_1.png"),
        ("dog.jpg", "dog__0.1-0.2_0.png"), ("dog.jpg", "dog__0.2-0.3_1.png")]
    (tmp_path / "manifest.csv").rename(out / "manifest.csv")
    pairs = load_pairs(imgs, out)  # by the manifest's image column; each mask of its image's size
    assert [(p.name, p.mask.shape) for p in pairs] == [("cat/cat__0.1-0.2_0", (30, 40)), ("cat/cat__0.2-0.3_1", (30, 40)),
                                                       ("dog/dog__0.1-0.2_0", (36, 24)), ("dog/dog__0.2-0.3_1", (36, 24))]
    assert masks_cli.main(["--out", str(tmp_path / "n"), "--images", str(imgs), "--count", "1", "--size", "64"]) == 1
    assert "--size and --images" in capsys.readouterr().err


def test_out_that_is_a_file_is_said_in_one_line(tmp_path, capsys):
    (tmp_path / "fresh.png").write_bytes(b"x")
    assert masks_cli.main(["--out", str(tmp_path / "fresh.png"), "--count", "1", "--size", "32"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out must be a folder" in err[0] and "Errno" not in err[0], err
