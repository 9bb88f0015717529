"""``fastinpaint train --model glcic``: the three-phase GLCIC schedule (Iizuka et al. 2017); registers
``TRAINERS["glcic"]`` (see :mod:`fastinpaint.training.run`).

Steps are counted over the whole run (``steps`` in all); step ``s`` (0-based) is

* ``s < glcic_completion_steps``: phase ``"completion"`` (MSE on the hole, completion network only);
* ``s < glcic_completion_steps + glcic_discriminator_steps``: phase ``"discriminator"`` (the
  context discriminator only, the completion network frozen);
* otherwise phase ``"joint"`` (``MSE + glcic_alpha * adversarial`` and the discriminator).

Each step is :func:`fastinpaint.training.glcic.glcic_step`. :class:`GLCICTrainer` is a
:class:`~fastinpaint.training.trainer.Trainer` with two networks, two optimisers (and two AMP
scalers), so GLCIC gets the same loop as the other models: data from
:func:`fastinpaint.training.run.build_datasets` / :func:`make_train_loader`, atomic checkpoints
(``out_dir/checkpoints/last.pt``: both networks, both optimisers and scalers, the step, every
process's RNG states and the sampler position) so that a resumed run repeats the uninterrupted
one exactly, Ctrl-C, validation grids with PSNR/SSIM, AMP on CUDA, and DDP under ``torchrun``
(both networks wrapped, BatchNorm over the global batch, so N processes train like one with the
same global batch). At the end ``out_dir/model.pt`` is the completion network written with
:meth:`GLCIC.save` (what ``--method glcic --weights`` takes).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple

import torch

from fastinpaint.nn.glcic import GLCIC, GLCICDiscriminator
from fastinpaint.training import distributed as fdist
from fastinpaint.training.glcic import DEFAULT_ALPHA, glcic_step
from fastinpaint.training.run import (TRAINERS, build_datasets, config_size, init_processes, load_init_weights,
                                      trainer_options)
from fastinpaint.training.trainer import Trainer, make_train_loader, unpack_batch

__all__ = ["train_glcic", "GLCICTrainer", "glcic_phase", "build_glcic", "GLCIC_TRAIN_CHECKPOINT_FORMAT"]

#: /2: per-process RNG states and the Trainer's entries (/1 was the single-process loop).
GLCIC_TRAIN_CHECKPOINT_FORMAT = "fastinpaint.glcic-trainer/2"

#: ``model_options`` understood for ``model = "glcic"`` (None: derived, see :func:`build_glcic`).
GLCIC_MODEL_OPTIONS: Dict[str, Any] = {
    "width": 64,            # completion network's first-layer channels (paper: 64)
    "local_size": None,     # local discriminator patch; default half the training size (paper 128 of 256)
    "disc_width": 64,       # discriminators' first-layer channels
    "disc_features": 1024,  # discriminators' feature size before the final FC layer
    "fill_mean": None,      # hole fill colour of the completion network's input (default ImageNet mean)
    "prefill": "mean",      # what the hole holds in that input: "mean" (fill_mean) or "pushpull"
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
    opts = _options(cfg)
    size = config_size(cfg["size"])
    local = opts["local_size"]
    if local is None:
        local = (max(1, size[0] // 2), max(1, size[1] // 2))
    elif not isinstance(local, int):
        local = config_size(local)
    completion = GLCIC(width=int(opts["width"]), fill_mean=opts["fill_mean"], prefill=str(opts["prefill"]))
    discriminator = GLCICDiscriminator(size, local, width=int(opts["disc_width"]),
                                       features=int(opts["disc_features"]))
    return completion, discriminator


class GLCICTrainer(Trainer):
    """The :class:`Trainer` loop for GLCIC: a completion network and a context discriminator.

    ``model`` / ``optimizer`` / ``scaler`` are the completion network's; ``discriminator`` /
    ``opt_d`` / ``scaler_d`` the discriminator's. Each step is :func:`glcic_step` of the phase
    :func:`glcic_phase` gives. Under DDP both networks get their BatchNorm layers synchronised
    (:func:`fastinpaint.training.distributed.sync_batchnorm`) and a ``DistributedDataParallel``
    wrapper, which :func:`glcic_step` uses only in the phases that train that network.

    Args:
        completion, discriminator: the networks (e.g. from :func:`build_glcic`).
        opt_c, opt_d: their optimisers.
        train_loader: per-process batches (see :func:`make_train_loader`).
        completion_steps, discriminator_steps: the lengths of phases 1 and 2.
        alpha: the adversarial weight.
        **kwargs: the other :class:`Trainer` arguments (``out_dir``, ``val_loader``, ``amp``, …).
    """

    checkpoint_format = GLCIC_TRAIN_CHECKPOINT_FORMAT

    def __init__(self, completion: torch.nn.Module, discriminator: torch.nn.Module, opt_c: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer, train_loader, *, completion_steps: int, discriminator_steps: int,
                 alpha: float = DEFAULT_ALPHA, **kwargs: Any) -> None:
        super().__init__(completion, None, opt_c, train_loader, **kwargs)  # the Trainer syncs its BatchNorm
        self.discriminator = fdist.sync_batchnorm(discriminator).to(self.device)
        self.opt_d = opt_d
        self.scaler_d = self.new_scaler()
        self.ddp_discriminator = self.wrap_ddp(self.discriminator)
        self.completion_steps, self.discriminator_steps = int(completion_steps), int(discriminator_steps)
        self.alpha = float(alpha)
        self.phase = self.phase_at(0)

    def phase_at(self, step: int) -> str:
        """The phase of 0-based step ``step``."""
        return glcic_phase(step, self.completion_steps, self.discriminator_steps)

    def train_step(self, batch) -> Dict[str, float]:
        image, hole = unpack_batch(batch)
        dtype = next(self.model.parameters()).dtype  # float32; float64 networks train in float64
        image = image.to(self.device, dtype, non_blocking=True)
        hole = hole.to(self.device, dtype, non_blocking=True)
        self.phase = self.phase_at(self.step)
        return glcic_step(self.phase, (image, hole), self.ddp_model, self.ddp_discriminator, self.optimizer,
                          self.opt_d, alpha=self.alpha, scaler_c=self.scaler, scaler_d=self.scaler_d, amp=self.amp,
                          grad_clip=self.grad_clip)

    def step_info(self) -> Dict[str, Any]:
        return {"phase": self.phase}

    def log_due(self, max_steps: int) -> bool:
        # a log line at the end of each phase too
        return super().log_due(max_steps) or (self.step < max_steps and self.phase_at(self.step) != self.phase)

    def predict(self, image_masked: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.model(image_masked, 1.0 - valid)  # GLCIC takes the hole mask (1 = hole)

    def network_state(self) -> Dict[str, Any]:
        def scaler(s):
            return s.state_dict() if s is not None else None

        return {"completion": self.model.state_dict(), "discriminator": self.discriminator.state_dict(),
                "opt_c": self.optimizer.state_dict(), "opt_d": self.opt_d.state_dict(),
                "scaler_c": scaler(self.scaler), "scaler_d": scaler(self.scaler_d)}

    def load_network_state(self, ckpt: Mapping[str, Any]) -> None:
        self.model.load_state_dict(ckpt["completion"])
        self.discriminator.load_state_dict(ckpt["discriminator"])
        self.optimizer.load_state_dict(ckpt["opt_c"])
        self.opt_d.load_state_dict(ckpt["opt_d"])
        for scaler, key in ((self.scaler, "scaler_c"), (self.scaler_d, "scaler_d")):
            if scaler is not None and ckpt.get(key) is not None:
                scaler.load_state_dict(ckpt[key])
        self.phase = self.phase_at(max(0, int(ckpt["step"]) - 1))


def train_glcic(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """Trains GLCIC with the three-phase schedule from a merged config (see :data:`run.DEFAULTS`).

    Keys used: the data pipeline's (``images``, ``masks``, ``size``, ``val_images``, …),
    :func:`fastinpaint.training.run.trainer_options`'s (``out_dir``, ``steps``,
    ``checkpoint_every``, ``val_every``, ``amp``, …), ``batch_size`` (global), ``lr`` (Adam, both
    networks), ``seed``, ``num_workers``, ``resume``, ``init_weights`` (completion network),
    ``glcic_completion_steps``, ``glcic_discriminator_steps``, ``glcic_alpha`` and
    ``model_options`` (``width``, ``local_size``, ``disc_width``, ``disc_features``, ``fill_mean``).
    Joins the ``torchrun`` process group when launched by it.

    Returns:
        ``{"step", "phase", "logs" (the last step's losses and validation metrics),
        "completion", "discriminator", "trainer"}``.

    Raises:
        ValueError: bad config values, a global batch that does not split across the processes.
        FileNotFoundError: ``resume`` names a checkpoint that does not exist.
    """
    tc, td = int(cfg.get("glcic_completion_steps", 0)), int(cfg.get("glcic_discriminator_steps", 0))
    if int(cfg["steps"]) <= 0:
        raise ValueError("steps must be positive")
    if tc < 0 or td < 0:
        raise ValueError("glcic_completion_steps and glcic_discriminator_steps must be >= 0")
    world = init_processes(cfg)
    train_ds, val_ds = build_datasets(cfg)  # before the networks: the cheap checks first
    seed = int(cfg["seed"])
    torch.manual_seed(seed)  # the same initial weights on every process and every run
    completion, discriminator = build_glcic(cfg)
    if cfg.get("init_weights"):
        # a GLCIC training checkpoint, a GLCIC.save file, or a bare state dict
        load_init_weights(completion, cfg["init_weights"], entries=("completion", "state_dict"))
    lr = float(cfg["lr"])
    opt_c = torch.optim.Adam(completion.parameters(), lr=lr)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr)
    loader = make_train_loader(train_ds, int(cfg["batch_size"]) // world, seed=seed,
                               num_workers=int(cfg["num_workers"]))
    trainer = GLCICTrainer(completion, discriminator, opt_c, opt_d, loader, completion_steps=tc,
                           discriminator_steps=td, alpha=float(cfg.get("glcic_alpha", DEFAULT_ALPHA)),
                           **trainer_options(cfg, val_ds))
    logs = trainer.fit(resume=cfg.get("resume"))
    # The inference file (training checkpoints also hold optimiser/RNG state and the discriminator).
    if trainer.is_main and not trainer.nothing_to_train:
        trainer.model.save(trainer.out_dir / "model.pt")
        print(f"fastinpaint train: wrote {trainer.out_dir / 'model.pt'} (step {trainer.step})", flush=True)
    return {"step": trainer.step, "phase": trainer.phase, "logs": logs, "completion": trainer.model,
            "discriminator": trainer.discriminator, "trainer": trainer}


TRAINERS["glcic"] = train_glcic
