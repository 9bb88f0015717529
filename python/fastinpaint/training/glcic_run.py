"""``fastinpaint train --model glcic``: the three-phase GLCIC schedule (Iizuka et al. 2017).

Steps are counted over the whole run (``steps`` in all); step ``s`` (0-based) is

* ``s < glcic_completion_steps``: phase ``"completion"`` (MSE on the hole, completion network only);
* ``s < glcic_completion_steps + glcic_discriminator_steps``: phase ``"discriminator"`` (the
  context discriminator only, the completion network frozen);
* otherwise phase ``"joint"`` (``MSE + glcic_alpha * adversarial`` and the discriminator).

Each step is :func:`fastinpaint.training.glcic.glcic_step`. Data come from
:func:`fastinpaint.training.run.build_datasets` / :func:`make_train_loader` as for the other
models. Checkpoints (``out_dir/checkpoints/last.pt``, atomic) hold both networks, both
optimisers, the step, the RNG states and the sampler position, so a resumed run repeats the
uninterrupted one exactly; Ctrl-C finishes the step in progress, saves and stops. At the end ``out_dir/model.pt`` is the completion network written
with :meth:`GLCIC.save` (what ``--method glcic --weights`` takes).

Single process only (for now): under ``torchrun`` with ``WORLD_SIZE > 1`` :func:`train_glcic`
raises a ``ValueError``.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import signal
import threading
import time
import warnings
from typing import Any, Dict, Mapping, Optional, Tuple

import torch

from fastinpaint.training.glcic import DEFAULT_ALPHA, glcic_step

__all__ = ["train_glcic", "glcic_phase", "build_glcic", "GLCIC_TRAIN_CHECKPOINT_FORMAT"]

GLCIC_TRAIN_CHECKPOINT_FORMAT = "fastinpaint.glcic-trainer/1"

#: ``model_options`` understood for ``model = "glcic"`` (None: derived, see :func:`build_glcic`).
GLCIC_MODEL_OPTIONS: Dict[str, Any] = {
    "width": 64,            # completion network's first-layer channels (paper: 64)
    "local_size": None,     # local discriminator patch; default half the training size (paper 128 of 256)
    "disc_width": 64,       # discriminators' first-layer channels
    "disc_features": 1024,  # discriminators' feature size before the final FC layer
    "fill_mean": None,      # hole fill colour of the completion network's input (default ImageNet mean)
}


def glcic_phase(step: int, completion_steps: int, discriminator_steps: int) -> str:
    """The phase of 0-based step ``step``: ``"completion"``, ``"discriminator"`` or ``"joint"``."""
    if step < completion_steps:
        return "completion"
    if step < completion_steps + discriminator_steps:
        return "discriminator"
    return "joint"


def _options(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    opts = dict(cfg.get("model_options") or {})
    unknown = sorted(set(opts) - set(GLCIC_MODEL_OPTIONS))
    if unknown:
        raise ValueError(f"unknown model_options for glcic {unknown}; valid: {sorted(GLCIC_MODEL_OPTIONS)}")
    return {**GLCIC_MODEL_OPTIONS, **opts}


def build_glcic(cfg: Mapping[str, Any]) -> Tuple[torch.nn.Module, torch.nn.Module]:
    """The completion network and the context discriminator a (merged) config describes."""
    from fastinpaint.nn.glcic import GLCIC, GLCICDiscriminator
    from fastinpaint.training.run import _size

    opts = _options(cfg)
    size = _size(cfg["size"])
    local = opts["local_size"]
    if local is None:
        local = (max(1, size[0] // 2), max(1, size[1] // 2))
    elif not isinstance(local, int):
        local = _size(local)
    completion = GLCIC(width=int(opts["width"]), fill_mean=opts["fill_mean"])
    discriminator = GLCICDiscriminator(size, local, width=int(opts["disc_width"]),
                                       features=int(opts["disc_features"]))
    return completion, discriminator


def _check_single_process() -> None:
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1 or _dist_world() > 1:
        raise ValueError(f"GLCIC training is single-process for now (WORLD_SIZE={world}): run "
                         "`fastinpaint train --model glcic` without torchrun (or with --nproc-per-node 1)")


def _dist_world() -> int:
    from fastinpaint.training.distributed import get_world_size

    return get_world_size()


def _load_init_weights(completion: torch.nn.Module, path: str) -> None:
    """A GLCIC.save file, a GLCIC training checkpoint, or a bare state dict."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(state, Mapping):
        if "completion" in state and isinstance(state["completion"], Mapping):
            state = state["completion"]
        elif "state_dict" in state and isinstance(state["state_dict"], Mapping):
            state = state["state_dict"]
    completion.load_state_dict(state)


def _log(out_dir: pathlib.Path, step: int, values: Dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "log.jsonl", "a") as f:
        f.write(json.dumps({"step": step, "time": time.time(), **values}) + "\n")


def train_glcic(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """Trains GLCIC with the three-phase schedule from a merged config (see :data:`run.DEFAULTS`).

    Keys used: ``images``/``masks``/``size``/… (the data pipeline), ``batch_size``, ``steps``,
    ``lr`` (Adam, both networks), ``seed``, ``num_workers``, ``checkpoint_every``, ``log_every``,
    ``out_dir``, ``resume``, ``init_weights`` (completion network), ``progress``,
    ``glcic_completion_steps``, ``glcic_discriminator_steps``, ``glcic_alpha`` and
    ``model_options`` (``width``, ``local_size``, ``disc_width``, ``disc_features``, ``fill_mean``).

    Returns:
        ``{"step", "phase", "logs" (the last step's losses), "completion", "discriminator"}``.

    Raises:
        ValueError: more than one process (``WORLD_SIZE > 1``), bad config values.
        FileNotFoundError: ``resume`` names a checkpoint that does not exist.
    """
    from fastinpaint.training.distributed import default_device
    from fastinpaint.training.run import build_datasets
    from fastinpaint.training.trainer import (atomic_torch_save, make_train_loader, rng_state, seed_everything,
                                              set_rng_state)

    _check_single_process()
    max_steps = int(cfg["steps"])
    tc, td = int(cfg.get("glcic_completion_steps", 0)), int(cfg.get("glcic_discriminator_steps", 0))
    if max_steps <= 0:
        raise ValueError("steps must be positive")
    if tc < 0 or td < 0:
        raise ValueError("glcic_completion_steps and glcic_discriminator_steps must be >= 0")
    alpha = float(cfg.get("glcic_alpha", DEFAULT_ALPHA))
    if cfg.get("amp"):
        warnings.warn("amp is not supported by GLCIC training yet; training in float32", RuntimeWarning)
    if cfg.get("val_images"):
        warnings.warn("validation is not implemented for GLCIC training yet; val_images is ignored", RuntimeWarning)
    if cfg.get("deterministic"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    out_dir = pathlib.Path(cfg["out_dir"])
    ckpt_path = out_dir / "checkpoints" / "last.pt"
    seed = int(cfg["seed"])
    device = default_device()

    torch.manual_seed(seed)  # the same initial weights on every run
    completion, discriminator = build_glcic(cfg)
    if cfg.get("init_weights"):
        _load_init_weights(completion, cfg["init_weights"])
    completion.to(device)
    discriminator.to(device)
    lr = float(cfg["lr"])
    opt_c = torch.optim.Adam(completion.parameters(), lr=lr)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr)
    batch_size = int(cfg["batch_size"])
    train_ds, _ = build_datasets(cfg)
    loader = make_train_loader(train_ds, batch_size, seed=seed, num_workers=int(cfg["num_workers"]))
    sampler = loader.sampler

    # --- resume or fresh start ------------------------------------------------------------------
    step = 0
    resume = cfg.get("resume")
    resumed = False
    if resume:
        path = ckpt_path if resume is True or str(resume).lower() == "true" else pathlib.Path(resume)
        if path.is_file():
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
            if ckpt.get("format") != GLCIC_TRAIN_CHECKPOINT_FORMAT:
                raise ValueError(f"{path} is not a GLCIC training checkpoint (format {ckpt.get('format')!r})")
            completion.load_state_dict(ckpt["completion"])
            discriminator.load_state_dict(ckpt["discriminator"])
            opt_c.load_state_dict(ckpt["opt_c"])
            opt_d.load_state_dict(ckpt["opt_d"])
            step = int(ckpt["step"])
            set_rng_state(ckpt["rng"])
            if ckpt.get("sampler") is not None:
                try:
                    sampler.load_state_dict(ckpt["sampler"])
                except ValueError as err:
                    warnings.warn(f"{err}; the data order continues but differs from the original run",
                                  RuntimeWarning)
            if ckpt.get("batch_size") not in (None, batch_size):
                warnings.warn(f"batch_size changed from {ckpt['batch_size']} to {batch_size}", RuntimeWarning)
            sampler.set_position(step * int(ckpt.get("batch_size") or batch_size))
            resumed = True
            print(f"fastinpaint train: resumed GLCIC from {path} at step {step}", flush=True)
        elif not (resume is True or str(resume).lower() == "true"):
            raise FileNotFoundError(f"checkpoint not found: {path}")
    if not resumed:
        seed_everything(seed)
        sampler.set_position(0)
    rng_snapshot = rng_state()
    config_record = json.loads(json.dumps(dict(cfg), default=str))

    def save_checkpoint() -> None:
        sampler.set_position(step * batch_size)
        atomic_torch_save({
            "format": GLCIC_TRAIN_CHECKPOINT_FORMAT,
            "step": step,
            "completion": completion.state_dict(),
            "discriminator": discriminator.state_dict(),
            "opt_c": opt_c.state_dict(),
            "opt_d": opt_d.state_dict(),
            "rng": rng_snapshot,
            "sampler": sampler.state_dict(),
            "batch_size": batch_size,
            "seed": seed,
            "config": config_record,
        }, ckpt_path)

    def new_iterator():
        # The DataLoader draws its base seed from the global RNG: keep that out of the training
        # stream (which a resume restores), as the Trainer does.
        with torch.random.fork_rng(devices=[]):
            return iter(loader)

    # Ctrl-C (SIGINT) is deferred to the end of the step in progress, then a checkpoint is saved
    # and KeyboardInterrupt raised; a second Ctrl-C stops at once (as in the Trainer).
    stop = {"requested": False}
    pid = os.getpid()

    def on_sigint(signum, frame) -> None:
        if os.getpid() != pid:  # a forked data-loader worker: the main process decides
            return
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True
        print("\nfastinpaint train: interrupt received; finishing this step and saving a checkpoint "
              "(Ctrl-C again to stop at once)", flush=True)

    handler_installed = threading.current_thread() is threading.main_thread()
    if handler_installed:
        previous_handler = signal.signal(signal.SIGINT, on_sigint)
    checkpoint_every = int(cfg.get("checkpoint_every") or 0)
    log_every = max(1, int(cfg.get("log_every") or 1))
    bar = None
    if cfg.get("progress", True):
        from tqdm import tqdm

        bar = tqdm(total=max_steps, initial=step, desc="train glcic", dynamic_ncols=True)
    logs: Dict[str, float] = {}
    phase = glcic_phase(step, tc, td)
    saved_at = -1
    data = new_iterator()
    t_start, s_start = time.perf_counter(), step
    try:
        while step < max_steps:
            if stop["requested"]:
                stop["at_boundary"] = True
                raise KeyboardInterrupt
            try:
                batch = next(data)
            except StopIteration:
                data = new_iterator()
                batch = next(data)
            except RuntimeError:  # loader workers killed by the same Ctrl-C: that is the interrupt
                if stop["requested"]:
                    stop["at_boundary"] = True
                    raise KeyboardInterrupt from None
                raise
            batch = {"image": batch["image"].to(device).float(), "mask": batch["mask"].to(device).float()}
            phase = glcic_phase(step, tc, td)
            logs = glcic_step(phase, batch, completion, discriminator, opt_c, opt_d, alpha=alpha)
            if not all(math.isfinite(v) for v in logs.values()):
                warnings.warn(f"non-finite loss at step {step + 1} ({phase}): {logs}", RuntimeWarning)
            step += 1
            rng_snapshot = rng_state()
            if bar is not None:
                bar.update(1)
                bar.set_postfix({"phase": phase, **{k: f"{v:.4g}" for k, v in logs.items()}}, refresh=False)
            phase_ends = step < max_steps and glcic_phase(step, tc, td) != phase
            if step % log_every == 0 or step == max_steps or phase_ends:
                rate = (step - s_start) / max(1e-9, time.perf_counter() - t_start)
                _log(out_dir, step, {"phase": phase, **{f"loss/{k}": v for k, v in logs.items()},
                                     "steps_per_s": rate})
            if checkpoint_every > 0 and step % checkpoint_every == 0:
                save_checkpoint()
                saved_at = step
        if saved_at != step:
            save_checkpoint()
    except KeyboardInterrupt:
        # Deferred to a step boundary (first Ctrl-C): the networks, optimisers and RNG snapshot are
        # those after step `step`. A second Ctrl-C may land mid-step; do not save then.
        if stop.get("at_boundary") and saved_at != step:
            try:
                save_checkpoint()
            except KeyboardInterrupt:
                pass
            print(f"\nfastinpaint train: interrupted; checkpoint at step {step} in {ckpt_path}", flush=True)
        raise
    finally:
        if handler_installed:
            signal.signal(signal.SIGINT, previous_handler)
        if bar is not None:
            bar.close()
    # The inference file (training checkpoints also hold optimiser/RNG state and the discriminator).
    completion.save(out_dir / "model.pt")
    return {"step": step, "phase": phase, "logs": logs, "completion": completion, "discriminator": discriminator}
