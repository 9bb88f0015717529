"""The ``fastinpaint`` command line, end to end, including every bad input the issue lists."""

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fastinpaint
from fastinpaint import cli

H, W = 40, 56


def _photo(seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.stack([(x * 4) % 256, (y * 6) % 256, ((x + y) * 3) % 256], -1).astype(np.uint8)
    rgb = np.clip(rgb.astype(int) + rng.integers(-8, 9, rgb.shape), 0, 255).astype(np.uint8)
    if mode == "RGBA":
        return Image.fromarray(np.concatenate([rgb, np.full((H, W, 1), 255, np.uint8)], -1), "RGBA")
    return Image.fromarray(rgb, "RGB")


def _mask(value=255, box=(12, 26, 16, 36)):
    m = np.zeros((H, W), np.uint8)
    y0, y1, x0, x1 = box
    m[y0:y1, x0:x1] = value
    return Image.fromarray(m, "L")


@pytest.fixture()
def files(tmp_path):
    img, mask = tmp_path / "photo.png", tmp_path / "photo_mask.png"
    _photo().save(img)
    _mask().save(mask)
    return tmp_path, img, mask


def run(*args):
    return cli.main([str(a) for a in args])


def test_inpaint_single(files, capsys):
    tmp, img, mask = files
    out = tmp / "out.png"
    assert run("inpaint", img, mask, "-o", out, "--seed", 3) == 0
    assert "wrote" in capsys.readouterr().out
    res, src = np.asarray(Image.open(out)), np.asarray(Image.open(img))
    hole = np.asarray(Image.open(mask)) > 127
    assert res.shape == src.shape and np.array_equal(res[~hole], src[~hole])
    assert not list(tmp.glob("*.tmp"))  # the temporary file was renamed away
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not the temporary file's private 0600


def test_threshold_and_invert(files, capsys):
    tmp, img, _ = files
    soft = tmp / "soft.png"
    _mask(value=100).save(soft)  # below the threshold: no hole at all
    out = tmp / "soft_out.png"
    assert run("inpaint", img, soft, "-o", out) == 0
    assert "warning" in capsys.readouterr().err  # empty mask: output = input, with a warning
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(img)))
    inv = tmp / "inv.png"
    m = np.full((H, W), 255, np.uint8)
    m[10:20, 10:30] = 0  # 0 = hole when inverted
    Image.fromarray(m).save(inv)
    out2 = tmp / "inv_out.png"
    assert run("inpaint", img, inv, "-o", out2, "--invert-mask") == 0
    res, src = np.asarray(Image.open(out2)), np.asarray(Image.open(img))
    assert np.array_equal(res[m > 0], src[m > 0])


def test_alpha_as_mask(tmp_path):
    rgba = np.asarray(_photo(mode="RGBA")).copy()
    rgba[5:15, 5:25, 3] = 0  # transparent = hole
    img = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(img)
    out = tmp_path / "a_out.png"
    assert run("inpaint", img, "-o", out) == 0
    res = np.asarray(Image.open(out))
    assert (res[..., 3] == 255).all()  # filled holes are now opaque
    keep = rgba[..., 3] > 127
    assert np.array_equal(res[keep], rgba[keep])


def test_batch(tmp_path, capsys):
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    for i in range(3):
        _photo(i).save(images / f"im{i}.png")
        _mask().save(masks / f"im{i}.png")
    assert run("inpaint", "--images", images, "--masks", masks, "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["im0.png", "im1.png", "im2.png"]
    assert "wrote 3 of 3" in capsys.readouterr().out
    # a missing mask fails that image only, and the exit status says so
    _photo(9).save(images / "lonely.png")
    assert run("inpaint", "--images", images, "--masks", masks, "--out", out, "--overwrite") == 1
    err = capsys.readouterr().err
    assert f"no mask named like lonely.png in {masks} and image {images / 'lonely.png'} has no alpha channel" in err


def test_batch_refuses_an_output_folder_that_is_an_input_folder(tmp_path, capsys):
    """--out the --images (or --masks) folder, or --masks the --images folder, through any
    spelling of the path: one line naming both, before anything is read or written (--out imgs
    wrote an output per image, which the next run took as inputs; --masks imgs took each image as
    its own mask)."""
    images, masks = tmp_path / "imgs", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    _photo().save(images / "a.png")
    _mask().save(masks / "a.png")
    (tmp_path / "link").symlink_to(images)
    (tmp_path / "sub").mkdir()
    link, dotdot = tmp_path / "link", f"{tmp_path}/sub/../imgs"
    cases = [(["--masks", masks, "--out", link], f"--out {link} is the --images folder {images}"),
             (["--masks", masks, "--out", f"{masks}/."], f"--out {masks} is the --masks folder {masks}"),
             (["--masks", dotdot], f"--masks {dotdot} is the --images folder {images}")]
    for extra, message in cases:
        assert run("inpaint", "--images", images, "--out", tmp_path / "out", *extra) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert [p.name for p in images.iterdir()] == ["a.png"] and [p.name for p in masks.iterdir()] == ["a.png"]
    assert not (tmp_path / "out").exists()


def test_batch_image_without_mask_file_uses_its_alpha(tmp_path, capsys):
    """--masks given, one image has no mask file but has alpha: single-file mode's rule (alpha as
    the mask), with a note; one with neither fails alone, and the rest go on."""
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    _photo(0).save(images / "a.png")
    _mask().save(masks / "a.png")
    rgba = np.asarray(_photo(1, mode="RGBA")).copy()
    rgba[5:15, 5:25, 3] = 0  # transparent = hole
    Image.fromarray(rgba, "RGBA").save(images / "b.png")
    _photo(2).save(images / "c.png")  # no mask, no alpha
    assert run("inpaint", "--images", images, "--masks", masks, "--out", out) == 1
    captured = capsys.readouterr()
    assert "wrote 2 of 3 images" in captured.out and ", 1 failed" in captured.out
    assert f"note: {images / 'b.png'}: no mask named like b.png in {masks}: its alpha channel is the mask" \
        in captured.err
    assert "c.png has no alpha channel" in captured.err and captured.err.count("error:") == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    # the result is single-file mode's, from the same image and no MASK
    assert run("inpaint", images / "b.png", "-o", tmp_path / "single.png") == 0
    assert np.array_equal(np.asarray(Image.open(out / "b.png")), np.asarray(Image.open(tmp_path / "single.png")))
    assert (np.asarray(Image.open(out / "b.png"))[..., 3] == 255).all()  # filled holes made opaque


def test_batch_lists_the_masks_folder_once(tmp_path, capsys, monkeypatch):
    """Masks of another extension than their images (photo.jpg, photo.png) are found by one
    listing of --masks for the whole batch (it was listed and sorted again for every image); an
    image with several masks of its stem and none of its name gets the first by name, with a note
    saying which."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(4):
        _photo(i).save(images / f"im{i}.jpg", quality=95)
        _mask().save(masks / f"im{i}.png")
    _mask().save(masks / "im0.bmp")  # im0: two masks of its stem
    listed = []
    iterdir = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda self: listed.append(self) or iterdir(self))
    assert run("inpaint", "--images", images, "--masks", masks, "--out", tmp_path / "out") == 0
    assert listed.count(masks) == 1
    err = capsys.readouterr().err
    assert f"note: {images / 'im0.jpg'}: 2 masks named im0.* in {masks} (im0.bmp, im0.png): used im0.bmp" in err
    assert err.count("note:") == 1


def test_batch_says_that_subfolders_are_not_searched(tmp_path, capsys):
    """Images in subfolders of --images are not read: said once (they were skipped silently), and
    in the error when the folder holds no image of its own (which said only 'no image files')."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    for d in (images / "2023", images / "2024", images / ".thumbnails", masks):
        d.mkdir(parents=True)
    _photo().save(images / "2023" / "a.png")
    assert run("inpaint", "--images", images, "--masks", masks, "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no image files" in err[0] and f"in {images} (2 subfolders not searched" in err[0]
    _photo().save(images / "b.png")
    _mask().save(masks / "b.png")
    assert run("inpaint", "--images", images, "--masks", masks, "--out", tmp_path / "out") == 0
    err = capsys.readouterr().err
    assert err.count(f"note: 2 subfolders of {images} not searched") == 1, err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["b.png"]


def _small_batch(tmp_path, n=3):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(n):
        _photo(i).save(images / f"im{i}.png")
        _mask().save(masks / f"im{i}.png")
    return images, masks


def test_batch_checks_the_output_folder_once_before_starting(tmp_path, capsys, monkeypatch):
    """An output folder that takes no file (read-only, full, another user's): one line before the
    batch starts (it was an error for every file, after reading each)."""
    import tempfile

    images, masks = _small_batch(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    mkstemp = tempfile.mkstemp

    def refuse(*args, dir=None, **kwargs):  # root ignores permission bits: refused here instead
        if Path(dir) == out:
            raise PermissionError(13, "Permission denied")
        return mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    assert run("inpaint", "--images", images, "--masks", masks, "--out", out) == 1
    captured = capsys.readouterr()
    assert captured.err == f"fastinpaint: error: cannot write to output folder {out}: Permission denied\n"
    assert captured.out == ""


def test_batch_creates_no_output_folder_when_there_is_nothing_to_do(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "notes.txt").write_text("no images here")
    assert run("inpaint", "--images", tmp_path / "images", "--out", tmp_path / "out") == 1
    assert "no image files" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message shown without a GPU")
def test_batch_cuda_without_gpu_is_said_once(tmp_path, capsys):
    """--device cuda where there is no GPU: one line before the batch starts (it was an error for
    every file), and no output folder made."""
    images, masks = _small_batch(tmp_path)
    assert run("inpaint", "--images", images, "--masks", masks, "--out", tmp_path / "out", "--device", "cuda") == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "--device: device='cuda' was requested but torch.cuda.is_available() is False" in captured.err
    assert captured.out == "" and not (tmp_path / "out").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message shown without a GPU")
def test_demo_cuda_without_gpu_is_a_clear_error(tmp_path, capsys):
    assert run("demo", "-o", tmp_path / "d.png", "--device", "cuda") == 1  # it ended in a traceback
    assert "--device: device='cuda' was requested but torch.cuda.is_available() is False" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_batch_interrupted_says_how_far_it_got_and_how_to_finish(tmp_path, capsys, monkeypatch):
    """Ctrl-C during a batch: how many outputs were written, and the re-run that finishes it (it
    said 'interrupted' only); that re-run writes the rest."""
    images, masks = _small_batch(tmp_path, n=4)
    out = tmp_path / "out"
    inpaint, calls = fastinpaint.inpaint, []

    def interrupted_on_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return inpaint(*args, **kwargs)

    monkeypatch.setattr(fastinpaint, "inpaint", interrupted_on_the_third)
    assert run("inpaint", "--images", images, "--masks", masks, "--out", out) == 130
    captured = capsys.readouterr()
    assert captured.err == (f"fastinpaint: interrupted after writing 2 of 4 images to {out}; "
                            "re-run with --skip-existing to finish\n"), captured.err
    assert run("inpaint", "--images", images, "--masks", masks, "--out", out, "--skip-existing") == 0
    assert "wrote 2 of 4 images" in capsys.readouterr().out and len(list(out.iterdir())) == 4
    calls.clear()
    assert run("inpaint", "--images", images, "--masks", masks, "--out", out, "--overwrite") == 130
    assert "re-run with --skip-existing instead of --overwrite to finish" in capsys.readouterr().err


def _batch_of_notes(tmp_path):
    """A folder whose batch prints a warning (empty mask), a note (alpha as the mask) and an error."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    _photo(0).save(images / "a.png")
    _mask(value=0).save(masks / "a.png")  # empty: a warning
    rgba = np.asarray(_photo(1, mode="RGBA")).copy()
    rgba[5:15, 5:25, 3] = 0
    Image.fromarray(rgba, "RGBA").save(images / "b.png")  # no mask file: its alpha, with a note
    (images / "c.png").write_bytes(b"not an image")  # an error
    _mask().save(masks / "c.png")
    _photo(3).save(images / "d.png")
    _mask().save(masks / "d.png")
    return images, masks


def test_batch_notes_start_a_line_of_their_own_below_the_progress_bar(tmp_path, monkeypatch):
    """On a terminal, every note, warning and error of a batch is written through the progress bar
    (which clears itself first): they were printed straight after the bar's text, on its line."""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    images, masks = _batch_of_notes(tmp_path)
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert run("inpaint", "--images", images, "--masks", masks, "--out", tmp_path / "out") == 1
    text = term.getvalue()
    assert "inpainting:" in text  # the bar was drawn
    starts = [text.index(what) for what in ("fastinpaint: warning: mask for", "note:", "error: cannot read image")]
    assert all(text[i - 1] in "\r\n" for i in starts), text


def test_batch_draws_no_progress_bar_unless_on_a_terminal(tmp_path, capsys):
    """stderr to a file or a pipe (a log, CI): the messages and the summary, without the bar's
    redrawn lines (each refresh was kept in the log, glued to the messages)."""
    images, masks = _batch_of_notes(tmp_path)
    assert run("inpaint", "--images", images, "--masks", masks, "--out", tmp_path / "out") == 1
    captured = capsys.readouterr()
    assert "inpainting" not in captured.err and "\r" not in captured.err, captured.err
    assert captured.err.count("\n") == 3  # the warning, the note, the error: one line each
    assert "wrote 3 of 4 images" in captured.out


def test_batch_errors_name_the_image_and_what_batch_mode_lacked(tmp_path, capsys):
    """Without --masks, an image with no alpha: 'no --masks folder' (it said 'no MASK given',
    single-file mode's words); a.png and a.jpg of different sizes sharing the mask a.png: the error
    names a.jpg (it named the mask only, which is a.png's)."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    _photo().save(images / "a.png")
    _photo().resize((W + 8, H + 4)).save(images / "a.jpg")
    _mask().save(masks / "a.png")
    assert run("inpaint", "--images", images, "--out", tmp_path / "o1") == 1
    err = capsys.readouterr().err
    assert f"error: no --masks folder and image {images / 'a.png'} has no alpha channel" in err, err
    assert "no MASK given" not in err and "note:" not in err
    assert run("inpaint", "--images", images, "--masks", masks, "--out", tmp_path / "o2") == 1
    err = capsys.readouterr().err
    assert f"error: {images / 'a.jpg'}: mask size {W}x{H} differs from image size {W + 8}x{H + 4}" in err, err
    assert [p.name for p in (tmp_path / "o2").iterdir()] == ["a.png"]


@pytest.mark.parametrize("terminal", [False, True])
def test_eval_draws_its_progress_bar_on_a_terminal_only(tmp_path, monkeypatch, capsys, terminal):
    """``eval`` follows ``inpaint``'s rule (one function, fastinpaint.cli._common): its bar was drawn
    into a log or a pipe too, every redraw kept as a line of its own."""
    images = tmp_path / "images"
    images.mkdir()
    _photo(0).save(images / "a.png")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    if terminal:
        monkeypatch.setattr(sys, "stderr", term)
    assert run("eval", "--method", "mean", "--images", images, "--generate", "2", "--bucket", "0.1-0.2") == 0
    err = term.getvalue() if terminal else capsys.readouterr().err
    assert ("eval:" in err) == terminal, err
    assert ("\r" in err) == terminal, err


def test_batch_under_torchrun_writes_each_file_exactly_once(tmp_path):
    """Two processes launched like torchrun (RANK / WORLD_SIZE) split the folder: together they
    write every output, none twice (a second writer of one file would fail: no --overwrite)."""
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    names = [f"im{i}.png" for i in range(5)]
    for i, name in enumerate(names):
        _photo(i).save(images / name)
        _mask().save(masks / name)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fastinpaint.cli", "inpaint", "--images", str(images), "--masks", str(masks),
             "--out", str(out)],
            env={**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for rank in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert "wrote 3 of 3 images" in outputs[0][0] and "wrote 2 of 2 images" in outputs[1][0]
    assert sorted(p.name for p in out.iterdir()) == names


def test_one_image_under_torchrun_is_written_by_rank_0_only(files, capsys, monkeypatch):
    """`torchrun ... inpaint IMAGE MASK -o OUT`: the other ranks leave it to rank 0, with a note,
    and exit 0 (each computed it, and all but the first failed on 'already exists')."""
    tmp, img, mask = files
    out = tmp / "o.png"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert run("inpaint", img, mask, "-o", out) == 0
    captured = capsys.readouterr()
    assert not out.exists() and captured.out == ""
    assert captured.err == "fastinpaint: note: rank 1 of 2: one IMAGE is inpainted by rank 0 only\n"
    monkeypatch.setenv("RANK", "0")
    assert run("inpaint", img, mask, "-o", out) == 0
    assert f"ok: wrote {out}" in capsys.readouterr().out and out.exists()


def test_batch_under_torchrun_every_process_finishes_its_share(tmp_path):
    """torchrun, and a process whose share has a failed file ends first: the other still writes
    all of its share (torchrun stopped it as soon as the first exited with status 1, and a re-run
    with --skip-existing stopped it again), and rank 0 prints the whole batch's count."""
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):  # rank 0: the even files, small, the first unreadable; rank 1: the odd ones, slower
        side = 16 if i % 2 == 0 else 320
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(images / f"im{i:02d}.png")
        hole = np.zeros((side, side), np.uint8)
        hole[side // 4: side * 3 // 4, side // 4: side * 3 // 4] = 255
        Image.fromarray(hole).save(masks / f"im{i:02d}.png")
    (images / "im00.png").write_bytes(b"not an image")
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "fastinpaint",
         "inpaint", "--images", str(images), "--masks", str(masks), "--out", str(out), "--hd-strategy", "original"],
        capture_output=True, text=True, timeout=300)
    assert res.returncode != 0  # a file failed
    assert sorted(p.name for p in out.iterdir()) == [f"im{i:02d}.png" for i in range(1, 12)], res.stderr
    assert f"all 2 processes: wrote 11 of 12 images to {out}, 1 failed" in res.stdout, res.stdout
    assert "exitcode  : -15" not in res.stderr  # none reported as killed: each exits with its own status


def test_a_process_waiting_for_the_others_answers_ctrl_c(tmp_path):
    """A batch process that has done its share waits for the others in torch.distributed's C++,
    which holds off Ctrl-C until it returns: it waited for torchrun's SIGKILL, 30 s after the
    Ctrl-C that had stopped the others. The wait, on a store key no one sets, ends at the Ctrl-C."""
    script = tmp_path / "wait.py"
    script.write_text("""
import datetime, os, signal, threading, time
from torch.distributed import TCPStore
from fastinpaint.cli.inpaint import _answering_ctrl_c

store = TCPStore("127.0.0.1", 0, 1, True, timeout=datetime.timedelta(seconds=60))
threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
start = time.monotonic()
try:
    _answering_ctrl_c(store.wait, ["a key no one sets"])
except KeyboardInterrupt:
    print(f"interrupted after {time.monotonic() - start:.1f} s")
""")
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert res.stdout.startswith("interrupted after"), res.stderr
    assert float(res.stdout.split()[2]) < 10


def test_missing_and_unreadable_files(files, capsys):
    tmp, img, mask = files
    assert run("inpaint", tmp / "nope.png", mask, "-o", tmp / "o.png") == 1
    assert "image file not found" in capsys.readouterr().err
    assert run("inpaint", img, tmp / "nope_mask.png", "-o", tmp / "o.png") == 1
    assert "mask file not found" in capsys.readouterr().err
    junk = tmp / "junk.png"
    junk.write_bytes(b"this is not an image")
    assert run("inpaint", junk, mask, "-o", tmp / "o.png") == 1
    assert "cannot read image" in capsys.readouterr().err
    assert not (tmp / "o.png").exists()


def test_size_mismatch(files, capsys):
    tmp, img, _ = files
    small = tmp / "small.png"
    Image.new("L", (20, 20), 255).save(small)
    assert run("inpaint", img, small, "-o", tmp / "o.png") == 1
    assert "differs from image size" in capsys.readouterr().err


def test_full_mask_and_no_alpha(files, capsys):
    tmp, img, _ = files
    full = tmp / "full.png"
    Image.new("L", (W, H), 255).save(full)
    assert run("inpaint", img, full, "-o", tmp / "o.png") == 1
    assert "covers the whole image" in capsys.readouterr().err
    assert run("inpaint", img, "-o", tmp / "o.png") == 1
    assert "no alpha channel" in capsys.readouterr().err


def test_paths_that_are_not_utf8_are_printed_escaped(files, capsys):
    """A file name with a byte that is not UTF-8 (Python holds it as a lone surrogate, PEP 383):
    written, then printed as a backslash escape of that byte (printing it raised UnicodeEncodeError,
    after the file was written, and the run ended in a traceback)."""
    tmp, img, mask = files
    out = tmp / os.fsdecode(b"caf\xe9.png")
    assert run("inpaint", img, mask, "-o", out) == 0
    assert "caf\\xe9.png" in capsys.readouterr().out and out.exists()
    assert run("inpaint", img, mask, "-o", out) == 1  # an error naming it: on stderr, the same escape
    assert "caf\\xe9.png already exists" in capsys.readouterr().err


def test_existing_output_needs_overwrite(files, capsys):
    tmp, img, mask = files
    out = tmp / "exists.png"
    out.write_bytes(b"precious")
    assert run("inpaint", img, mask, "-o", out) == 1
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert run("inpaint", img, mask, "-o", out, "--overwrite") == 0
    assert Image.open(out).size == (W, H)


def test_atomic_write_leaves_nothing_on_failure(files, monkeypatch, capsys):
    tmp, img, mask = files
    out = tmp / "crash.png"

    def boom(self, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    assert run("inpaint", img, mask, "-o", out) == 1
    assert "disk full" in capsys.readouterr().err
    assert not out.exists() and not list(tmp.glob(".crash.png.*"))


def test_unknown_output_format_and_usage_errors(files, capsys):
    tmp, img, mask = files
    assert run("inpaint", img, mask, "-o", tmp / "o.unknownext") == 1
    assert "format" in capsys.readouterr().err
    assert run("inpaint", img, mask) == 1
    assert "-o OUT" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run("inpaint", img, mask, "-o", tmp / "x.png", "--device", "tpu")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_without_gpu_is_a_clear_error(files, capsys):
    tmp, img, mask = files
    assert run("inpaint", img, mask, "-o", tmp / "o.png", "--device", "cuda") == 1
    assert "cuda" in capsys.readouterr().err.lower()
    assert not (tmp / "o.png").exists()


def test_help_states_threshold(capsys):
    with pytest.raises(SystemExit):
        run("inpaint", "--help")
    assert "127" in capsys.readouterr().out


def test_demo_and_entry_point(tmp_path):
    out = tmp_path / "demo.png"
    res = subprocess.run(
        [sys.executable, "-m", "fastinpaint.cli", "demo", "-o", str(out)], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert str(out.resolve()) in res.stdout
    assert Image.open(out).size == Image.open(Path(fastinpaint.__file__).parent / "data" / "astronaut.png").size
    assert (tmp_path / "demo_before_after.png").exists()


def test_python_dash_m_fastinpaint(files):
    """`python -m fastinpaint` (and so `torchrun -m fastinpaint`) is the command, as
    `python -m fastinpaint.cli` is (it was 'No module named fastinpaint.__main__')."""
    tmp, img, mask = files
    res = subprocess.run([sys.executable, "-m", "fastinpaint", "inpaint", str(img), str(mask), "-o",
                          str(tmp / "m.png")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"ok: wrote {tmp / 'm.png'}" in res.stdout and Image.open(tmp / "m.png").size == (W, H)


def test_ctrl_c_while_the_command_starts_is_one_line(tmp_path):
    """Ctrl-C in the first seconds of `fastinpaint ...` (while torch is imported): one line and
    exit status 130 (it was a traceback through torch's import). The console script that
    pyproject.toml declares, run with a Ctrl-C delivered as torch starts to import."""
    import re

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    module, function = re.search(r'^fastinpaint = "([\w.]+):(\w+)"', pyproject, re.M).groups()
    script = tmp_path / "fastinpaint"
    script.write_text(f"""
import sys

class CtrlC:  # Ctrl-C pressed while torch is being imported
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            raise KeyboardInterrupt

sys.meta_path.insert(0, CtrlC())
from {module} import {function}
sys.exit({function}())
""")
    res = subprocess.run([sys.executable, str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert (res.returncode, res.stderr, res.stdout) == (130, "fastinpaint: interrupted\n", "")


def test_demo_never_replaces_a_file(tmp_path, capsys, monkeypatch):
    """The README's first command, run twice, or where a file of its output's name is (the user's):
    both runs succeed, the second under the next free names, and no file is replaced."""
    monkeypatch.chdir(tmp_path)
    assert run("demo") == 0
    first = (tmp_path / "fastinpaint_demo.png").read_bytes()
    (tmp_path / "fastinpaint_demo-2_before_after.png").write_bytes(b"the user's own")  # -2 is taken too
    assert run("demo") == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path.resolve() / 'fastinpaint_demo-3.png'} (fastinpaint_demo.png or " in out
    assert f"wrote {tmp_path.resolve() / 'fastinpaint_demo-3_before_after.png'} (before | after)" in out
    assert (tmp_path / "fastinpaint_demo.png").read_bytes() == first
    assert (tmp_path / "fastinpaint_demo-2_before_after.png").read_bytes() == b"the user's own"
    assert not (tmp_path / "fastinpaint_demo-2.png").exists()  # a pair: both names free, or neither used
    assert (tmp_path / "fastinpaint_demo-3.png").read_bytes() == first  # same seed, same result
    # -o a folder: the default name in it; --overwrite: the names given, replaced
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "fastinpaint_demo.png").write_bytes(b"old")
    assert run("demo", "-o", "sub", "--overwrite") == 0
    assert (tmp_path / "sub" / "fastinpaint_demo.png").read_bytes() == first
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["fastinpaint_demo.png",
                                                                    "fastinpaint_demo_before_after.png"]
    # a bad name: one line, before computing, nothing written
    assert run("demo", "-o", "demo.xyz") == 1
    assert "cannot tell the image format of output demo.xyz" in capsys.readouterr().err
    assert not list(tmp_path.glob("demo*"))


def test_hd_strategy_flags(files, capsys):
    tmp, img, mask = files
    out_r, out_o = tmp / "resize.png", tmp / "original.png"
    assert run("inpaint", img, mask, "-o", out_r, "--hd-strategy", "resize", "--hd-size", 32) == 0
    assert run("inpaint", img, mask, "-o", out_o, "--hd-strategy", "original") == 0
    src, hole = np.asarray(Image.open(img)), np.asarray(Image.open(mask)) > 127
    res = np.asarray(Image.open(out_r))
    assert np.array_equal(res[~hole], src[~hole])
    expected = fastinpaint.inpaint(src, hole, hd_strategy="resize", hd_size=32)
    assert np.array_equal(res, expected)
    assert not np.array_equal(res, np.asarray(Image.open(out_o)))  # the flag reached the dispatcher
    with pytest.raises(SystemExit):
        run("inpaint", img, mask, "-o", tmp / "x.png", "--hd-strategy", "tiles")
    with pytest.raises(SystemExit):
        run("inpaint", img, mask, "-o", tmp / "x.png", "--hd-size", 8)
    assert "at least 16" in capsys.readouterr().err
    for strategy in ("original", "crop"):  # hd_size is auto's and resize's working size: said, not ignored
        assert run("inpaint", img, mask, "-o", tmp / "x.png", "--hd-strategy", strategy, "--hd-size", 64) == 1
        assert f"--hd-size has no effect with --hd-strategy {strategy}" in capsys.readouterr().err
    assert not (tmp / "x.png").exists()


def test_source_mask_restricts_what_is_copied(tmp_path, capsys):
    # left half red, right half blue, a hole across the middle: with a source mask of the right
    # half, the fill may copy blue only; without it, the hole's left part copies red
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, : W // 2] = (200, 30, 30)
    rgb[:, W // 2:] = (30, 30, 200)
    rng = np.random.default_rng(3)
    rgb = np.clip(rgb.astype(int) + rng.integers(-6, 7, rgb.shape), 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "in.png")
    hole = np.zeros((H, W), bool)
    hole[14:26, 10:46] = True
    Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "hole.png")
    allowed = np.zeros((H, W), np.uint8)
    allowed[:, W // 2 + 4:] = 255
    Image.fromarray(allowed).save(tmp_path / "allowed.png")
    assert run("inpaint", tmp_path / "in.png", tmp_path / "hole.png", "-o", tmp_path / "src.png",
               "--source-mask", tmp_path / "allowed.png") == 0
    assert run("inpaint", tmp_path / "in.png", tmp_path / "hole.png", "-o", tmp_path / "free.png") == 0
    restricted = np.asarray(Image.open(tmp_path / "src.png")).astype(int)[hole]
    free = np.asarray(Image.open(tmp_path / "free.png")).astype(int)[hole]
    assert (restricted[:, 2] > restricted[:, 0]).all()  # every fill pixel copied from the blue half
    assert (free[:, 0] > free[:, 2]).sum() > 50  # without it, red is copied into the red side
    # the same as the API's source_mask, and refused where it cannot apply
    expected = fastinpaint.inpaint(rgb, hole, source_mask=allowed > 127)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "src.png")), expected)
    assert run("inpaint", "--images", tmp_path, "--out", tmp_path / "o", "--source-mask", tmp_path / "allowed.png") == 1
    assert "--source-mask is for one IMAGE" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["inpaint", "{tmp}/missing.png", "{tmp}/missing_mask.png", "-o", "{tmp}/o.png"],
    ["eval", "--method", "biharmonic", "--images", "{tmp}/missing", "--masks", "{tmp}/missing"],
    ["masks", "--out", "{tmp}/m", "--count", "2", "--bucket", "0.9-0.1"],
    ["train", "--config", "{tmp}/missing.toml"],
])
def test_every_subcommand_reports_a_user_error_with_status_1(tmp_path, capsys, argv):
    """One rule for scripts: a failure the user caused is one 'error:' line and exit status 1 in
    every subcommand (2 is argparse's alone, for a command line it cannot parse)."""
    assert run(*[a.format(tmp=tmp_path) for a in argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0], err


def test_an_image_file_first_implies_inpaint(files):
    tmp, img, mask = files
    assert run(img, mask, "-o", tmp / "short.png", "--seed", 3) == 0
    assert run("inpaint", img, mask, "-o", tmp / "long.png", "--seed", 3) == 0
    assert np.array_equal(np.asarray(Image.open(tmp / "short.png")), np.asarray(Image.open(tmp / "long.png")))
    with pytest.raises(SystemExit):  # a word that is neither a subcommand nor an image file stays an error
        run("inpant", img, mask, "-o", tmp / "x.png")


def test_missing_weights_said_once_and_blend_none_for_any_method(tmp_path, capsys):
    """A batch with a --weights file that does not exist: one line before any image is read (it
    was one error per image, after decoding each); --blend none, every method's behaviour, is
    accepted whatever the method (it was refused for pconv)."""
    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    for i in range(3):
        _photo(seed=i).save(tmp_path / "img" / f"p{i}.png")
        _mask().save(tmp_path / "msk" / f"p{i}.png")
    rc = run("inpaint", "--images", tmp_path / "img", "--masks", tmp_path / "msk", "--out", tmp_path / "out",
             "--method", "pconv", "--weights", tmp_path / "nope.pt")
    err = capsys.readouterr().err
    assert rc == 1 and err.count("error") == 1 and "--weights" in err and "does not exist" in err, err
    assert not (tmp_path / "out").exists()
    assert run("inpaint", tmp_path / "img" / "p0.png", tmp_path / "msk" / "p0.png", "-o", tmp_path / "o.png",
               "--method", "pconv", "--blend", "none") == 0


def test_hidden_files_are_not_images_of_a_batch(tmp_path, capsys):
    """Batch mode lists no hidden file (macOS writes `._photo.png` sidecars next to photos): it
    counted one as a failed image with no mask."""
    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    _photo().save(tmp_path / "img" / "p.png")
    _mask().save(tmp_path / "msk" / "p.png")
    _photo(seed=1).save(tmp_path / "img" / "._p.png")
    assert run("inpaint", "--images", tmp_path / "img", "--masks", tmp_path / "msk", "--out", tmp_path / "out") == 0
    assert sorted(q.name for q in (tmp_path / "out").iterdir()) == ["p.png"]
    assert "failed" not in capsys.readouterr().err


def test_output_piped_into_head_ends_quietly(shared_data, tmp_path):
    """`fastinpaint eval ... | head -1`: the reader goes away; no BrokenPipeError traceback."""
    cmd = [sys.executable, "-m", "fastinpaint.cli", "eval", "--method", "mean", "--images",
           str(shared_data / "photos"), "--masks", str(shared_data / "masks"), "--max-size", "48", "--limit", "2",
           "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # as `head` does once it has its lines
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "Broken" not in err and "error" not in err, err


def test_version(capsys):
    import fastinpaint
    from fastinpaint import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"fastinpaint {fastinpaint.__version__}"
