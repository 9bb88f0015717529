"""evaluate(): two methods on development pairs through the CLI, CSV/table, and clear errors."""

from __future__ import annotations

import argparse
import csv

import numpy as np
import pytest
from PIL import Image

from fastinpaint import evaluate as ev
from fastinpaint import metrics
from fastinpaint.cli import eval as eval_cli


def _parser(inpaint_fn=None):
    parser = argparse.ArgumentParser(prog="fastinpaint")
    eval_cli.add_subcommand(parser.add_subparsers(dest="command"), inpaint_fn)
    return parser


def _run(argv, inpaint_fn=None):
    args = _parser(inpaint_fn).parse_args(["eval", *argv, "--quiet"])
    return args.func(args)


@pytest.fixture
def small_set(tmp_path):
    """Three small synthetic images and one mask each (IMAGE__suffix.png naming)."""
    imgs, masks = tmp_path / "images", tmp_path / "masks"
    imgs.mkdir(), masks.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:48] / 40.0
    for i in range(3):
        img = np.stack([xx * rng.random(), yy * rng.random(), 0.5 + 0 * xx], -1)
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(imgs / f"im{i}.png")
        m = np.zeros((40, 48), np.uint8)
        m[10:20 + 5 * i, 12:30] = 255
        Image.fromarray(m).save(masks / f"im{i}__box.png")
    return imgs, masks


def test_two_methods_on_development_pairs_via_cli(shared_data, tmp_path, capsys):
    calls = []

    def fake_dispatcher(image, mask, method, **kw):  # stands in for fastinpaint.inpaint
        calls.append((method, kw, image.dtype, mask.dtype))
        return ev.mean_fill(image, mask)

    out = tmp_path / "scores.csv"
    per = tmp_path / "per_image.csv"
    rc = _run(["--method", "telea,meanfill", "--weights", "w.pt", "--images", str(shared_data / "photos"),
               "--masks", str(shared_data / "masks"), "--max-size", "96", "--limit", "14", "--csv", str(out),
               "--per-image-csv", str(per)], fake_dispatcher)
    assert rc == 0
    table = capsys.readouterr().out
    assert "telea" in table and "meanfill" in table and "PSNR" in table
    assert "sharp" in table and "SWDx1000" in table
    assert calls and calls[0][0] == "meanfill" and calls[0][1] == {"weights": "w.pt"}
    assert calls[0][2] == np.uint8 and calls[0][3] == np.bool_
    rows = list(csv.DictReader(open(out)))
    assert {r["method"] for r in rows} == {"telea", "meanfill"}
    overall = {r["method"]: r for r in rows if r["bucket"] == "all"}
    assert int(overall["telea"]["count"]) == 14
    # per-bucket rows add up to the overall count; Telea beats filling with the mean
    assert sum(int(r["count"]) for r in rows if r["method"] == "telea" and r["bucket"] != "all") == 14
    assert float(overall["telea"]["psnr"]) > float(overall["meanfill"]["psnr"])
    assert float(overall["telea"]["ssim"]) > float(overall["meanfill"]["ssim"])
    # texture scores: Telea's diffusion is blurrier than the photo (the flat mean fill's sharpness
    # is mostly its seam at this size, so it is not compared), and its texture is closer than a flat fill's
    assert 0.0 < float(overall["telea"]["sharpness"]) < 1.0
    assert 0 < float(overall["telea"]["swd"]) < float(overall["meanfill"]["swd"])
    per_rows = list(csv.DictReader(open(per)))
    assert len(per_rows) == 28
    assert {"psnr", "ssim", "l1", "sharpness", "swd", "seconds"} <= set(per_rows[0])
    telea_rows = [r for r in per_rows if r["method"] == "telea"]
    assert float(overall["telea"]["swd"]) == pytest.approx(np.mean([float(r["swd"]) for r in telea_rows]), rel=1e-6)
    # the table shows SWD x1000, the CSV the raw value
    line = next(ln for ln in table.splitlines() if ln.startswith("telea") and " all " in ln)
    assert float(line.split()[-2]) == pytest.approx(1000 * float(overall["telea"]["swd"]), abs=1e-3)
    assert float(line.split()[-3]) == pytest.approx(float(overall["telea"]["sharpness"]), abs=1e-3)


def test_weights_go_to_the_learned_method(small_set):
    seen = {}

    def dispatcher(image, mask, method, **kw):
        seen[method] = kw
        return image

    imgs, masks = small_set
    base = ["--images", str(imgs), "--masks", str(masks)]
    assert _run(["--method", "a,b,telea", "--weights", "a=wa.pt,b=wb.pt", *base], dispatcher) == 0
    assert seen == {"a": {"weights": "wa.pt"}, "b": {"weights": "wb.pt"}}
    assert _run(["--method", "a,b", "--weights", "w.pt", *base], dispatcher) == 1
    assert _run(["--method", "telea", "--weights", "w.pt", *base], dispatcher) == 1


def test_evaluate_scores_the_composite(small_set):
    imgs, masks = small_set
    pairs = ev.load_pairs(imgs, masks)
    assert len(pairs) == 3 and pairs[0].mask.dtype == np.bool_
    res = ev.evaluate({"mean": ev.mean_fill}, pairs, print_table=False)
    p = pairs[0]
    given = p.image.copy()
    given[p.mask] = 0
    comp = np.where(p.mask[..., None], ev.mean_fill(given, p.mask), p.image).astype(np.float64) / 255
    gt = p.image / 255.0
    row = res.rows[0]
    assert row["psnr"] == pytest.approx(metrics.psnr(gt, comp), abs=1e-9)
    assert row["ssim"] == pytest.approx(metrics.ssim(gt, comp), abs=1e-9)
    assert row["l1"] == pytest.approx(np.abs(gt - comp).mean(), abs=1e-9)
    assert row["sharpness"] == pytest.approx(metrics.sharpness(comp, gt, p.mask), rel=1e-9)
    assert row["swd"] == pytest.approx(metrics.swd(comp, gt, p.mask), rel=1e-9)
    assert res.summary[0]["swd"] == pytest.approx(np.mean([r["swd"] for r in res.rows]), rel=1e-12)
    assert res.summary[0]["sharpness"] == pytest.approx(np.mean([r["sharpness"] for r in res.rows]), rel=1e-12)
    assert row["bucket"] == ev.ratio_bucket(p.mask.mean())
    assert res.summary[0]["bucket"] == "all" and res.summary[0]["count"] == 3


def test_methods_cannot_see_the_hole(small_set):
    imgs, masks = small_set

    def peeking(image, mask):
        assert (image[mask] == 0).all()
        return image

    ev.evaluate(peeking, ev.load_pairs(imgs, masks), print_table=False)


def test_generated_masks(small_set, capsys):
    imgs, _ = small_set
    pairs = ev.load_pairs(imgs, generate=2, buckets=[(0.1, 0.2), (0.3, 0.4)], seed=1)
    assert len(pairs) == 6
    assert all(0.1 < p.mask.mean() <= 0.2 for p in pairs[0::2])
    assert _run(["--method", "telea", "--images", str(imgs), "--generate", "2", "--bucket", "0.1-0.2;0.3-0.4"]) == 0
    assert "0.3-0.4" in capsys.readouterr().out


def test_errors_are_clear(small_set, tmp_path, capsys):
    imgs, masks = small_set
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run(["--method", "telea", "--images", str(empty), "--masks", str(masks)]) == 1
    assert "no images found" in capsys.readouterr().err

    Image.fromarray(np.zeros((40, 48), np.uint8)).save(masks / "stranger.png")
    assert _run(["--method", "telea", "--images", str(imgs), "--masks", str(masks)]) == 1
    err = capsys.readouterr().err
    assert "match no image" in err and "stranger.png" in err
    (masks / "stranger.png").unlink()

    (imgs / "im0.png").write_bytes(b"not a png")
    assert _run(["--method", "telea", "--images", str(imgs), "--masks", str(masks)]) == 1
    err = capsys.readouterr().err
    assert "cannot read image" in err and "im0.png" in err

    assert _run(["--method", "telea", "--images", str(imgs)]) == 1
    assert "exactly one of --masks" in capsys.readouterr().err
    assert _run(["--method", "nosuch", "--images", str(imgs), "--generate", "1"]) == 1
    err = capsys.readouterr().err
    assert "unknown method 'nosuch'" in err and "the baselines mean, pypatchmatch, telea, telea5" in err

    with pytest.raises(ValueError, match="no hole pixels"):
        ev.evaluate(ev.mean_fill, [(np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16), bool))], print_table=False)
    with pytest.raises(ValueError, match="does not match"):
        ev.evaluate(ev.mean_fill, [(np.zeros((16, 16, 3), np.uint8), np.ones((8, 8), bool))], print_table=False)
    with pytest.raises(ValueError, match="no \\(image, mask\\) pairs"):
        ev.evaluate(ev.mean_fill, [], print_table=False)


def test_a_0_1_mask_file_is_named_with_the_rule(small_set, capsys):
    """A mask file with no hole pixel by the rule (a 0/1 mask): the error named the pair `0/0`,
    not the file, and not why."""
    imgs, masks = small_set
    m = np.zeros((40, 48), np.uint8)
    m[10:20, 12:30] = 1
    Image.fromarray(m).save(masks / "im1__box.png")
    assert _run(["--method", "mean", "--images", str(imgs), "--masks", str(masks)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(masks / "im1__box.png") in err[0], err
    assert "no hole pixel (hole = grey > 127; a 0/1 mask must be scaled to 0/255)" in err[0]


def test_mask_size_mismatch(small_set):
    imgs, masks = small_set
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(masks / "im1__small.png")
    with pytest.raises(ValueError, match="is 20x20 but image"):
        ev.load_pairs(imgs, masks)


def test_telea_float_and_missing_opencv(monkeypatch):
    img = np.random.default_rng(0).random((20, 20, 3)).astype(np.float32)
    mask = np.zeros((20, 20), bool)
    mask[5:10, 5:10] = True
    out = ev.telea(img, mask)
    assert out.dtype == np.float32 and out.shape == img.shape and np.allclose(out[~mask], img[~mask], atol=1 / 255)
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match="opencv-python-headless"):
        ev.telea(img, mask)


def test_telea5_is_opencv_at_radius_5():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    img = (rng.random((40, 50, 3)) * 255).astype(np.uint8)
    mask = np.zeros((40, 50), bool)
    mask[10:25, 12:30] = True
    want = cv2.inpaint(img, mask.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
    assert np.array_equal(ev.telea5(img, mask), want)
    assert not np.array_equal(ev.telea(img, mask), want)  # radius 3 differs: the radius reaches OpenCV
    assert ev.BASELINES["telea5"] is ev.telea5


def test_pypatchmatch_baseline_is_pypatchmatch_at_patch_size_3():
    pytest.importorskip("patchmatch.patch_match", reason="pypatchmatch not installed")
    from patchmatch import patch_match

    yy, xx = np.mgrid[0:48, 0:64]
    img = np.stack([(xx * 4) % 256, (yy * 5) % 256, ((xx + yy) * 3) % 256], -1).astype(np.uint8)
    mask = np.zeros((48, 64), bool)
    mask[15:30, 20:40] = True
    given = img.copy()
    given[mask] = 0
    out = ev.pypatchmatch(given, mask)
    patch_match.set_random_seed(0)
    want = patch_match.inpaint(given, mask=mask.astype(np.uint8) * 255, patch_size=3)
    assert out.shape == img.shape and np.array_equal(out, want)
    assert np.array_equal(out[~mask], img[~mask])
    with pytest.raises(ValueError, match="does not match image"):
        ev.pypatchmatch(given, mask[:-1])


def test_evaluate_reports_the_fill_mean_offset_in_grey_levels(small_set, tmp_path):
    # a method that fills with the truth plus a fixed tint: the offsets are that tint, in 8-bit
    # grey levels, per pair and in the summary, in both CSVs and in the printed table
    imgs, masks = small_set
    pairs = ev.load_pairs(imgs, masks)

    def tinted(given, hole):  # ground truth from the enclosing pair, +6 red, -3 blue (within 0..255)
        gt = next(p.image for p in pairs if np.array_equal(p.mask, hole)).astype(np.int16)
        return np.clip(gt + np.array([6, 0, -3]), 0, 255).astype(np.uint8)

    res = ev.evaluate({"tinted": tinted}, pairs, print_table=False, csv_path=tmp_path / "s.csv",
                      per_image_csv=tmp_path / "p.csv")
    for p, row in zip(pairs, res.rows):
        gt = p.image[p.mask].astype(np.float64)
        want = np.clip(gt + [6, 0, -3], 0, 255).mean(0) - gt.mean(0)
        assert [row["offset_r"], row["offset_g"], row["offset_b"]] == pytest.approx(list(want), abs=1e-9)
    overall = next(r for r in csv.DictReader(open(tmp_path / "s.csv")) if r["bucket"] == "all")
    assert float(overall["offset_r"]) == pytest.approx(np.mean([r["offset_r"] for r in res.rows]), abs=1e-5)
    assert float(overall["offset_r"]) > 3 and float(overall["offset_b"]) < -1
    assert {"offset_r", "offset_g", "offset_b"} <= set(next(csv.DictReader(open(tmp_path / "p.csv"))))
    line = next(ln for ln in res.table().splitlines() if ln.startswith("tinted") and " all " in ln)
    assert float(line.split()[6]) == pytest.approx(float(overall["offset_r"]), abs=0.01)


def test_limit_below_one_is_refused(small_set, capsys):
    imgs, masks = small_set
    assert len(ev.load_pairs(imgs, masks, limit=2)) == 2
    assert len(ev.load_pairs(imgs, generate=2, limit=3)) == 3
    for bad in (0, -1, 1.5, True):
        # 0 scored every pair and -1 dropped the last one, both silently
        with pytest.raises(ValueError, match=r"limit must be a positive int"):
            ev.load_pairs(imgs, masks, limit=bad)
        with pytest.raises(ValueError, match=r"limit must be a positive int"):
            ev.load_pairs(imgs, generate=1, limit=bad)
    for bad in ("0", "-1"):
        with pytest.raises(SystemExit) as exit_info:  # at argument parsing, before any image is read
            _run(["--method", "telea", "--images", str(imgs), "--masks", str(masks), "--limit", bad])
        assert exit_info.value.code == 2
        assert f"--limit: must be at least 1, got {bad}" in capsys.readouterr().err


def test_report_destination_checked_before_scoring(shared_data, tmp_path, capsys):
    """A --csv that is a folder, or in a folder that does not exist, is one line before any pair
    is scored (it used to be a traceback after all of them)."""
    calls = []

    def fake_dispatcher(image, mask, method, **kw):
        calls.append(method)
        return ev.mean_fill(image, mask)

    common = ["--method", "meanfill", "--images", str(shared_data / "photos"), "--masks", str(shared_data / "masks"),
              "--max-size", "64", "--limit", "2"]
    (tmp_path / "adir").mkdir()
    for flag, path, words in (("--csv", tmp_path / "adir", "is a directory"),
                              ("--per-image-csv", tmp_path / "missing" / "p.csv", "does not exist")):
        assert _run(common + [flag, str(path)], fake_dispatcher) == 1
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
    assert not calls
    assert not (tmp_path / "adir.tmp").exists()


def test_usage_mistakes_are_named(small_set, tmp_path, capsys):
    """--generate 0 said 'give exactly one of --masks and --generate'; --weights with a method
    that takes none printed patchmatch's whole option list; a missing --weights file was reported
    as 'cannot write the report'."""
    import fastinpaint

    imgs, masks = small_set
    with pytest.raises(SystemExit) as exit_info:
        _run(["--method", "mean", "--images", str(imgs), "--generate", "0"])
    assert exit_info.value.code == 2 and "--generate: must be at least 1, got 0" in capsys.readouterr().err
    base = ["--images", str(imgs), "--masks", str(masks)]
    for argv in (["--method", "patchmatch", "--weights", "w.pt"], ["--method", "patchmatch,mean", "--weights", "w.pt"],
                 ["--method", "patchmatch,pconv", "--weights", "patchmatch=w.pt"]):
        assert _run([*argv, *base], fastinpaint.inpaint) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--weights applies only to the learned methods (glcic, pconv)" in err[0], err
    assert _run(["--method", "patchmatch,pconv", "--weights", str(tmp_path / "nope.pt"), *base],
                fastinpaint.inpaint) == 1
    err = capsys.readouterr().err
    assert f"--weights {tmp_path / 'nope.pt'}: the file does not exist" in err and "report" not in err


def test_a_mask_matching_two_images_by_name_is_an_error(small_set, capsys):
    """Two images of one name in different subfolders, one mask each: only the first image was
    scored (twice), silently."""
    imgs, masks = small_set
    (imgs / "a").mkdir(), (imgs / "b").mkdir()
    (imgs / "im0.png").rename(imgs / "a" / "x.png")
    (imgs / "im1.png").rename(imgs / "b" / "x.png")
    (masks / "im0__box.png").rename(masks / "x__1.png")
    (masks / "im1__box.png").rename(masks / "x__2.png")
    assert _run(["--method", "mean", "--images", str(imgs), "--masks", str(masks)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(imgs / "a" / "x.png") in err[0] and str(imgs / "b" / "x.png") in err[0], err
    with open(masks / "manifest.csv", "w") as f:  # the way to pair them: a manifest with the paths
        f.write("image,mask\na/x.png,x__1.png\nb/x.png,x__2.png\nim2.png,im2__box.png\n")
    pairs = ev.match_pairs(imgs, masks)
    assert [(i.relative_to(imgs).as_posix(), m.name) for i, m in pairs] == [
        ("a/x.png", "x__1.png"), ("b/x.png", "x__2.png"), ("im2.png", "im2__box.png")]


def test_a_file_error_while_scoring_is_not_called_a_report_error(small_set, tmp_path, capsys):
    """An OSError a method raises while scoring (a file it needed) is said as such, one line;
    'cannot write' is kept for the reports, which write_csv raises as ReportWriteError."""
    imgs, masks = small_set

    def needs_a_file(image, mask, method, **kw):
        raise FileNotFoundError(2, "No such file or directory", "/nowhere/lut.bin")

    argv = ["--method", "meanfill", "--images", str(imgs), "--masks", str(masks), "--csv", str(tmp_path / "s.csv")]
    assert _run(argv, needs_a_file) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "evaluation failed: /nowhere/lut.bin No such file or directory" in err[0], err
    assert "cannot write" not in err[0]
    (tmp_path / "afile").write_text("")
    with pytest.raises(ev.ReportWriteError, match="cannot write .*r.csv: "):
        ev.write_csv(tmp_path / "afile" / "r.csv", [], ["a"])  # its folder is a file


def test_weights_that_are_not_network_weights_are_named_for_what_they_are(small_set, tmp_path, capsys):
    """--weights given a run's folder, its training checkpoint or a text file: each said as such, in
    one line, pointing to the run's exported model.pt (a folder was 'the file does not exist', a text
    file repeated torch's advice to load it with weights_only=False)."""
    import torch

    import fastinpaint

    imgs, masks = small_set
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    torch.save({"format": "fastinpaint.trainer/1", "step": 3}, run_dir / "checkpoints" / "last.pt")
    torch.save({"format": "fastinpaint.PConvUNet"}, run_dir / "model.pt")
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    base = ["--method", "pconv", "--images", str(imgs), "--masks", str(masks)]
    expected = {run_dir: f"--weights {run_dir}: a folder, not a weights file (it holds a run's exported weights: "
                         f"--weights {run_dir / 'model.pt'})",
                run_dir / "checkpoints" / "last.pt": f"is a training checkpoint ('fastinpaint.trainer/1', for "
                                                     f"--resume), not network weights: give the weights the run "
                                                     f"exported, {run_dir / 'model.pt'}",
                text: f"'{text}' is not a fastinpaint weights file (not a readable PyTorch checkpoint)"}
    for weights, message in expected.items():
        assert _run([*base, "--weights", str(weights)], fastinpaint.inpaint) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and "weights_only" not in err[0], err


def test_images_without_a_mask_are_named_in_a_note(small_set, capsys):
    """An image that no mask pairs with was left out silently (fewer pairs, exit 0)."""
    imgs, masks = small_set
    for extra in ("zz.png", "aa.png"):
        Image.open(imgs / "im0.png").save(imgs / extra)
    assert _run(["--method", "mean", "--images", str(imgs), "--masks", str(masks)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fastinpaint eval: note: 2 image(s) have no mask and are not scored: aa.png, zz.png"], err


def test_report_names_end_in_csv_and_both_reports_are_named(small_set, tmp_path, capsys):
    """--csv rep.json wrote CSV silently; 'summary written to' left out --per-image-csv's file."""
    imgs, masks = small_set
    base = ["--method", "mean", "--images", str(imgs), "--masks", str(masks)]
    assert _run([*base, "--csv", str(tmp_path / "rep.json")]) == 1
    assert "give a file name ending in .csv" in capsys.readouterr().err and not (tmp_path / "rep.json").exists()
    assert _run([*base, "--csv", str(tmp_path / "s.csv"), "--per-image-csv", str(tmp_path / "p.csv")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == (f"summary written to {tmp_path / 's.csv'}; "
                                                                f"per-image scores written to {tmp_path / 'p.csv'}")
