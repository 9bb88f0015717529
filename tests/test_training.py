"""Trainer: loss goes down, interrupted + resumed == uninterrupted, 2-process gloo DDP == 1 process."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch
from PIL import Image

from fastinpaint.data import ImageFolder, InpaintingDataset
from fastinpaint.masks import IrregularMaskDataset
from fastinpaint.cli.train import add_subcommand as add_train_subcommand
from fastinpaint.training import MODELS, TRAINERS, SeededSampler, Trainer, make_train_loader, train

SIZE = 32


# Tiny tensors: extra threads only add overhead (and noise) on a shared machine.
pytestmark = pytest.mark.usefixtures("one_thread")


class TinyNet(torch.nn.Module):
    """model(image_masked, valid_mask) -> output: three convs on [image, mask]."""

    def __init__(self, dropout: float = 0.0, batch_norm: bool = False) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            # no bias before BatchNorm: its gradient is zero up to rounding, which Adam would amplify
            torch.nn.Conv2d(4, 8, 3, padding=1, bias=not batch_norm),
            torch.nn.BatchNorm2d(8) if batch_norm else torch.nn.Identity(),
            torch.nn.ReLU(), torch.nn.Dropout2d(dropout),
            torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, image, valid):
        return torch.sigmoid(self.body(torch.cat([image, valid], dim=1)))


def l1_loss(output, target, valid):
    hole = (1 - valid) * (output - target).abs()
    rest = valid * (output - target).abs()
    terms = {"hole": hole.mean(), "valid": rest.mean()}
    terms["total"] = 6 * terms["hole"] + terms["valid"]
    return terms


def _dataset(image_dir):
    return InpaintingDataset(ImageFolder(image_dir, size=SIZE, seed=0),
                             IrregularMaskDataset(SIZE, buckets=[(0.1, 0.3)], seed=1))


def _trainer(image_dir, out_dir, batch_size, dropout=0.0, init_seed=0, batch_norm=False, **kw):
    torch.manual_seed(init_seed)
    net = TinyNet(dropout, batch_norm)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    loader = make_train_loader(_dataset(image_dir), batch_size=batch_size, seed=3)
    return Trainer(net, l1_loss, opt, loader, out_dir=out_dir, seed=5, progress=False, device="cpu", **kw)


def test_tiny_training_lowers_the_loss(image_dir, tmp_path):
    trainer = _trainer(image_dir, tmp_path, batch_size=4, checkpoint_every=0, log_every=1)
    trainer.fit(40)
    import json

    losses = [json.loads(line)["loss/total"] for line in open(tmp_path / "log.jsonl")]
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert (tmp_path / "checkpoints" / "last.pt").is_file()


def test_resume_after_interrupt_reproduces_weights(image_dir, tmp_path):
    steps = 8
    full = _trainer(image_dir, tmp_path / "full", batch_size=2, dropout=0.3, checkpoint_every=3)
    full.fit(steps)

    class InterruptAt:
        """Delivers a real SIGINT during the loss of step `at` (the trainer defers it)."""

        def __init__(self, at, raise_directly=False):
            self.calls, self.at, self.raise_directly = 0, at, raise_directly

        def __call__(self, *args):
            self.calls += 1
            if self.calls == self.at:
                if self.raise_directly:
                    raise KeyboardInterrupt
                os.kill(os.getpid(), signal.SIGINT)
            return l1_loss(*args)

    for raise_directly, expect_step in ((False, 5), (True, 4)):
        out = tmp_path / f"part_{raise_directly}"
        part = _trainer(image_dir, out, batch_size=2, dropout=0.3, checkpoint_every=3)
        part.loss_fn = InterruptAt(5, raise_directly)
        with pytest.raises(KeyboardInterrupt):
            part.fit(steps)
        ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
        assert ckpt["step"] == expect_step
        # a fresh process would build everything again: other initial weights, fresh optimizer
        resumed = _trainer(image_dir, out, batch_size=2, dropout=0.3, init_seed=123, checkpoint_every=3)
        torch.manual_seed(999), np.random.seed(999)  # disturb the RNGs: resume must restore them
        resumed.fit(steps, resume=True)
        assert resumed.step == steps
        for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
            assert torch.equal(a, b), f"{name} differs after resume (raise_directly={raise_directly})"


def test_sampler_shards_match_the_single_process_stream():
    one = SeededSampler(10, seed=4, num_replicas=1, rank=0)
    stream = [i for _, i in zip(range(40), iter(one))]
    shards = [[i for _, i in zip(range(20), iter(SeededSampler(10, seed=4, num_replicas=2, rank=r)))] for r in (0, 1)]
    assert stream[0::2] == shards[0] and stream[1::2] == shards[1]
    assert sorted(x % 10 for x in stream[:10]) == list(range(10))  # each epoch is a permutation
    resumed = SeededSampler(10, seed=4, num_replicas=1, rank=0, position=13)
    assert [i for _, i in zip(range(5), iter(resumed))] == stream[13:18]


def _ddp_worker(rank, image_dir, out_dir, steps, batch_norm):
    # stop half-way, then resume in new trainers: DDP resume is covered too
    _trainer(image_dir, out_dir, batch_size=2, checkpoint_every=0, batch_norm=batch_norm).fit(steps // 2)
    _trainer(image_dir, out_dir, batch_size=2, checkpoint_every=0, init_seed=rank + 50,
             batch_norm=batch_norm).fit(steps, resume=True)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_ddp_two_processes_match_one_process(image_dir, tmp_path, run_ddp, batch_norm):
    """2 gloo processes x batch 2 (stopped after 2 steps, resumed to 4) == 1 process x batch 4;
    with BatchNorm too (its statistics are taken over the global batch)."""
    steps = 4
    single = _trainer(image_dir, tmp_path / "single", batch_size=4, checkpoint_every=0, batch_norm=batch_norm)
    single.fit(steps)
    run_ddp(_ddp_worker, 2, str(image_dir), str(tmp_path / "ddp"), steps, batch_norm)
    ddp = torch.load(tmp_path / "ddp" / "checkpoints" / "last.pt", weights_only=False)
    assert ddp["step"] == steps and ddp["world_size"] == 2 and len(ddp["rng"]) == 2
    for name, a in single.model.state_dict().items():
        torch.testing.assert_close(ddp["model"][name], a, rtol=1e-5, atol=1e-6, msg=f"{name} differs")


def test_cleanup_frees_dropped_ddp_wrappers_before_destroying_the_group(tmp_path, monkeypatch):
    """A DDP wrapper in a reference cycle holds the process group: cleanup() must free it before
    destroying the group, or the group is torn down at interpreter exit (where gloo can abort)."""
    import gc
    import weakref

    import torch.distributed as dist

    from fastinpaint.training.distributed import cleanup

    if dist.is_initialized():
        pytest.skip("a process group is already initialised")
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    destroy = dist.destroy_process_group
    gc_enabled = gc.isenabled()
    gc.disable()  # only cleanup's collection may free the cycle
    try:
        ddp = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2))
        alive = weakref.ref(ddp)
        cycle = {"ddp": ddp}
        cycle["self"] = cycle
        del ddp, cycle
        assert alive() is not None
        freed_first = []
        monkeypatch.setattr(dist, "destroy_process_group",
                            lambda *a, **k: (freed_first.append(alive() is None), destroy(*a, **k)))
        cleanup()
        assert freed_first == [True]
        assert not dist.is_initialized()
    finally:
        if gc_enabled:
            gc.enable()
        if dist.is_initialized():
            destroy()


def test_train_from_toml_config_with_validation(image_dir, tmp_path):
    MODELS["tiny-test"] = lambda cfg: (TinyNet(), l1_loss)
    try:
        cfg = tmp_path / "train.toml"
        cfg.write_text(f'model = "tiny-test"\nimages = "{image_dir}"\nval_images = "{image_dir}"\n'
                       f'size = {SIZE}\nbatch_size = 2\nnum_workers = 0\nlr = 0.01\n'
                       '[train]\ncheckpoint_every = 2\nval_count = 3\nprogress = false\n')
        import argparse

        parser = argparse.ArgumentParser()
        add_train_subcommand(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["train", "--config", str(cfg), "--steps", "3", "--out", str(tmp_path / "run")])
        assert args.func(args) == 0
        run = tmp_path / "run"
        assert torch.load(run / "checkpoints" / "last.pt", weights_only=False)["step"] == 3
        grid = Image.open(run / "val" / "step_0000002.png")
        assert grid.size == (3 * (SIZE + 4), 3 * (SIZE + 4))  # 3 columns x val_count rows, 2-px frames
        args = parser.parse_args(["train", "--config", str(cfg), "--steps", "5", "--out", str(run), "--resume"])
        assert args.func(args) == 0
        assert torch.load(run / "checkpoints" / "last.pt", weights_only=False)["step"] == 5
    finally:
        del MODELS["tiny-test"]


def test_train_config_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown config key"):
        train({"model": "nope", "bogus": 1})
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        train({"model": "nope"})
    with pytest.raises(FileNotFoundError):
        train(tmp_path / "missing.toml")


def test_a_registered_run_gets_the_merged_config():
    """TRAINERS: a model with a training run of its own (as GLCIC) is called with the merged config."""
    seen = {}

    def own_run(cfg):
        seen["cfg"] = cfg
        return "result"

    TRAINERS["own-run"] = own_run
    try:
        assert train({"model": "own-run"}, steps=3) == "result"
        assert seen["cfg"]["steps"] == 3 and seen["cfg"]["lr"] == 2e-4  # defaults filled in
    finally:
        del TRAINERS["own-run"]
    assert {"pconv", "glcic"} <= set(MODELS) | set(TRAINERS)
    with pytest.raises(ValueError, match=r"registered models: \['glcic', 'pconv'\]"):
        train({"model": "nope"})


def test_batches_are_unpacked_once_for_every_trainer():
    from fastinpaint.training.trainer import unpack_batch

    image, hole = torch.rand(2, 3, 8, 8), torch.ones(2, 8, 8)
    for batch in ({"image": image, "mask": hole}, (image, hole), [image, hole.unsqueeze(1)]):
        got_image, got_hole = unpack_batch(batch)
        assert got_image is image and got_hole.shape == (2, 1, 8, 8)
    with pytest.raises(KeyError, match="glcic_step: batch dict needs 'image' and 'mask'"):
        unpack_batch({"image": image}, "glcic_step")
    with pytest.raises(TypeError, match="a batch must be"):
        unpack_batch(image)
    with pytest.raises(ValueError, match="mask must be"):
        unpack_batch((image, torch.ones(2, 1, 4, 8)))


def test_atomic_checkpoint_write_keeps_the_old_file_on_failure(tmp_path):
    from fastinpaint.training import atomic_torch_save

    path = tmp_path / "ck.pt"
    atomic_torch_save({"step": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full, say")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_torch_save({"step": 2, "x": Unpicklable()}, path)
    assert torch.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temporary file left behind


def test_tensorboard_logging_when_installed(image_dir, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard not installed: the trainer logs to log.jsonl only")
    val = torch.utils.data.Subset(_dataset(image_dir), [0, 1])
    trainer = _trainer(image_dir, tmp_path, batch_size=2, checkpoint_every=2, log_every=1,
                       val_loader=torch.utils.data.DataLoader(val, batch_size=2))
    trainer.fit(2)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert trainer.last_val["psnr"] > 0 and 0 < trainer.last_val["ssim"] <= 1


def test_yaml_config_and_flag_precedence(tmp_path):
    pytest.importorskip("yaml", reason="PyYAML not installed: YAML configs are optional")
    from fastinpaint.training import load_config, merge_config

    path = tmp_path / "c.yaml"
    path.write_text("model: tiny\nsteps: 7\nfinetune: true\nloss_weights: {hole: 3.0}\n")
    cfg = merge_config(load_config(path), {"steps": 9, "seed": None})
    assert cfg["steps"] == 9 and cfg["seed"] == 0 and cfg["lr"] == 5e-5 and cfg["loss_weights"] == {"hole": 3.0}


def test_loader_workers_do_not_change_the_run(image_dir, tmp_path):
    """Crops and masks depend on (seed, index) only, not on which worker process reads them."""
    results = []
    for workers in (0, 2):
        torch.manual_seed(0)
        net = TinyNet()
        loader = make_train_loader(_dataset(image_dir), batch_size=2, seed=3, num_workers=workers)
        trainer = Trainer(net, l1_loss, torch.optim.Adam(net.parameters(), lr=1e-2), loader,
                          out_dir=tmp_path / str(workers), seed=5, progress=False, device="cpu", checkpoint_every=0)
        trainer.fit(3)
        results.append(trainer.model.state_dict())
    for name, a in results[0].items():
        assert torch.equal(a, results[1][name]), name


_CLI_SCRIPT = '''
import sys, torch
sys.path.insert(0, {tests!r})
from test_training import TinyNet, l1_loss
from fastinpaint.training import MODELS
from fastinpaint.cli.train import main
MODELS["tiny"] = lambda cfg: (TinyNet(), l1_loss)
sys.exit(main())
'''


def test_ctrl_c_to_the_process_group_saves_a_checkpoint(image_dir, tmp_path):
    """What a terminal's Ctrl-C does: SIGINT to the trainer and its loader workers at once."""
    import pathlib
    import subprocess
    import sys
    import time

    script = tmp_path / "run.py"
    script.write_text(_CLI_SCRIPT.format(tests=str(pathlib.Path(__file__).parent)))
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(script), "--model", "tiny", "--images", str(image_dir),
                             "--size", str(SIZE), "--batch-size", "2", "--steps", "1000000", "--workers", "2",
                             "--checkpoint-every", "1000000", "--log-every", "1", "--no-progress", "--out", str(out)],
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 90
        while not (out / "log.jsonl").is_file() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[0]
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["step"] >= 1 and "checkpoint at step" in output


def test_pconv_model_trains_through_the_registry(image_dir, tmp_path):
    """`fastinpaint train --model pconv`: a small PConvUNet, no VGG16 (feature terms weighted 0),
    a few steps lower the loss, and the exported network loads as a PConvUNet."""
    from fastinpaint.nn import PConvUNet

    trainer = train(model="pconv", images=str(image_dir), out_dir=str(tmp_path / "run"), size=32, batch_size=2,
                    steps=12, lr=1e-3, num_workers=0, checkpoint_every=12, log_every=1, progress=False,
                    model_options={"layers": 4, "base_channels": 8},
                    loss_weights={"perceptual": 0, "style": 0})
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    totals = [entry["loss/total"] for entry in log if "loss/total" in entry]
    assert len(totals) >= 10 and sum(totals[-3:]) < sum(totals[:3])
    exported = PConvUNet.load(tmp_path / "run" / "model.pt")  # written by train() for --weights
    for name, value in trainer.model.net.state_dict().items():
        assert torch.equal(exported.state_dict()[name], value), name



def test_checkpoints_load_without_running_code_from_the_file(image_dir, tmp_path):
    """Training checkpoints hold only tensors and plain containers (torch.load(weights_only=True)
    reads them); one in the former layout (NumPy's RNG keys as an array) still resumes with
    NumPy's generator restored exactly; and a file that would run code on loading is refused by
    both readers with an error naming it, without running it."""
    import pathlib
    import pickle

    from fastinpaint.training.run import load_init_weights

    trainer = _trainer(image_dir, tmp_path / "run", batch_size=2, checkpoint_every=2)
    trainer.fit(2)
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    ckpt = torch.load(path, weights_only=True)  # raises if anything but data is in the file
    name, keys, *rest = ckpt["rng"][0]["numpy"]
    ckpt["rng"][0]["numpy"] = (name, keys.numpy().astype(np.uint32), *rest)  # the former layout
    legacy = tmp_path / "legacy.pt"
    torch.save(ckpt, legacy)
    expected = np.random.RandomState()
    expected.set_state(ckpt["rng"][0]["numpy"])
    np.random.seed(12345)  # disturbed: loading must restore it
    resumed = _trainer(image_dir, tmp_path / "resumed", batch_size=2)
    resumed.load_checkpoint(legacy)
    assert resumed.step == 2
    assert np.array_equal(np.random.random(8), expected.random_sample(8))
    load_init_weights(TinyNet(), str(legacy))

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (marker,))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"model": Payload()}))
    with pytest.raises(ValueError, match="evil.pt"):
        load_init_weights(TinyNet(), str(evil))
    with pytest.raises(ValueError, match="evil.pt"):
        resumed.load_checkpoint(evil)
    assert not marker.exists()


def _train_cli(*argv):
    import argparse

    parser = argparse.ArgumentParser()
    add_train_subcommand(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", *map(str, argv)])
    return args.func(args)


def test_a_run_without_resume_never_replaces_an_earlier_run(image_dir, tmp_path, capsys):
    """`fastinpaint train` again in the same out_dir without --resume: refused before any data is
    read (the images folder of the second call does not even exist), naming the folder and both
    ways on; the earlier run's files are untouched. --overwrite starts over: a fresh log."""
    MODELS["tiny-test"] = lambda cfg: (TinyNet(), l1_loss)
    try:
        run = tmp_path / "run1"
        common = ["--model", "tiny-test", "--size", SIZE, "--batch-size", 2, "--workers", 0, "--no-progress",
                  "--log-every", 1, "--out", run]
        assert _train_cli(*common, "--images", image_dir, "--steps", 4) == 0
        assert _train_cli(*common, "--images", image_dir, "--steps", 6, "--resume") == 0
        before = {name: (run / name).read_bytes() for name in ("checkpoints/last.pt", "model.pt", "log.jsonl")
                  if (run / name).is_file()}
        capsys.readouterr()
        assert _train_cli(*common, "--images", tmp_path / "not-there", "--steps", 2) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(run) in err[0] and "--resume" in err[0] and "--overwrite" in err[0], err
        assert {name: (run / name).read_bytes() for name in before} == before
        assert _train_cli(*common, "--images", image_dir, "--steps", 2, "--resume", "--overwrite") == 1
        assert "contradict" in capsys.readouterr().err
        assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == 6
        assert _train_cli(*common, "--images", image_dir, "--steps", 2, "--overwrite") == 0
        assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == 2
        steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
        assert steps == [1, 2]  # the new run's log only
    finally:
        del MODELS["tiny-test"]


def test_cheap_checks_come_before_vgg16_and_its_error_says_how_to_do_without(image_dir, tmp_path, monkeypatch,
                                                                            capsys):
    """No --images, or an empty folder, is said as such: it was the VGG16-weights error, since the
    network and its loss were built first. The VGG16 error itself names the config workaround."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no VGG16 weights there
    (tmp_path / "empty").mkdir()
    common = ["--model", "pconv", "--size", SIZE, "--batch-size", 2, "--workers", 0, "--no-progress",
              "--out", tmp_path / "run"]
    for extra, expected in (([], "no training images"), (["--images", tmp_path / "empty"], "no images found"),
                            (["--images", image_dir, "--masks", tmp_path / "nope"], "mask folder not found"),
                            (["--images", image_dir], "loss_weights = {perceptual = 0, style = 0}")):
        assert _train_cli(*common, *extra) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], (extra, err)
    assert not (tmp_path / "run").exists()


def test_train_help_is_plain_and_names_the_keys_without_a_flag(capsys):
    """`train --help` showed the module docstring's RST (``fastinpaint train``, :class:`Trainer`);
    the docs said every config key is also a flag, which four are not."""
    import pathlib

    from fastinpaint.cli import train as train_cli
    from fastinpaint.training import DEFAULTS

    flagged = {key for _, key, _ in train_cli._FLAGS} | set(train_cli._SWITCHES)
    assert set(DEFAULTS) - flagged == set(train_cli.CONFIG_ONLY)
    with pytest.raises(SystemExit):
        _train_cli("--help")
    text = capsys.readouterr().out
    assert "``" not in text and ":class:" not in text and ":data:" not in text, text
    assert "border, hflip, loss_weights, model_options" in text
    doc = (pathlib.Path(__file__).parents[1] / "docs" / "training.md").read_text()
    assert "every key is also a flag" not in doc
    assert "Every key but `border`, `hflip`,\n`loss_weights` and `model_options` is also a flag" in doc


def test_val_count_below_one_is_named(image_dir, tmp_path, capsys):
    """--val-count 0 gave torch's 'batch_size should be a positive integer value' after the data
    and the network were set up."""
    for bad in ("0", "-2"):
        assert _train_cli("--model", "pconv", "--images", image_dir, "--val-images", image_dir, "--val-count", bad,
                          "--out", tmp_path / "run") == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"val_count (--val-count) must be an integer >= 1, got {bad}" in err[0], err


def test_a_crop_size_below_8_is_named_as_the_crop_size(image_dir, tmp_path, capsys):
    """--size 7 said 'mask size must be at least 8x8': the masks' check, of a size given for the crops."""
    assert _train_cli("--model", "pconv", "--images", image_dir, "--size", "7", "--out", tmp_path / "run") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "size (--size, the side of the training crops and their masks) must be at least 8, " \
        "got 7x7" in err[0], err


def test_progress_bar_unset_is_drawn_on_a_terminal_only(monkeypatch, tmp_path):
    """``progress`` unset in the config and no --no-progress: the bar is drawn when stderr is a
    terminal only, the rule of eval and inpaint (a training log had every redraw of the bar);
    set, the config decides."""
    import io
    import sys

    from fastinpaint.training.run import DEFAULTS, trainer_options

    class Stream(io.StringIO):
        def __init__(self, tty):
            super().__init__()
            self.tty = tty

        def isatty(self):
            return self.tty

    cfg = dict(DEFAULTS, out_dir=str(tmp_path), steps=1)
    assert cfg["progress"] is None
    for tty in (True, False):
        monkeypatch.setattr(sys, "stderr", Stream(tty))
        assert trainer_options(cfg, None)["progress"] is tty
        assert trainer_options(dict(cfg, progress=True), None)["progress"] is True
        assert trainer_options(dict(cfg, progress=False), None)["progress"] is False


class _ExportingNet(TinyNet):
    """TinyNet with PConvUNet's ``export``: a run writes ``model.pt``."""

    def export(self, path) -> None:
        torch.save(self.state_dict(), path)


def test_a_run_says_where_it_wrote_model_pt_and_a_finished_one_is_left_as_it_is(image_dir, tmp_path, capsys):
    """A run ends with 'wrote RUN/model.pt (step N)' (it ended silently). --resume on a run already
    at --steps trains nothing and says so, leaving model.pt and the checkpoint as they are (it said
    only 'resumed at step 10' and rewrote both)."""
    MODELS["tiny-export"] = lambda cfg: (_ExportingNet(), l1_loss)
    try:
        run = tmp_path / "run1"
        common = ["--model", "tiny-export", "--size", SIZE, "--batch-size", 2, "--workers", 0, "--no-progress",
                  "--images", image_dir, "--out", run]
        assert _train_cli(*common, "--steps", 3) == 0
        assert capsys.readouterr().out.strip().splitlines()[-1] == f"fastinpaint train: wrote {run / 'model.pt'} (step 3)"
        files = {name: (run / name).stat().st_mtime_ns for name in ("model.pt", "checkpoints/last.pt")}
        assert _train_cli(*common, "--steps", 2, "--resume") == 0
        out = capsys.readouterr().out.strip().splitlines()
        assert out[-1] == "fastinpaint train: the run is already at step 3 >= --steps 2; nothing to train", out
        assert {name: (run / name).stat().st_mtime_ns for name in files} == files
    finally:
        del MODELS["tiny-export"]
