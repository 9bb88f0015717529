"""Training: a generic resumable, DDP-ready :class:`Trainer`, and the runs behind ``fastinpaint train``.

* :class:`Trainer` — progress bar with loss terms, validation grids and PSNR/SSIM, TensorBoard
  when installed, atomic checkpoints (every N steps, at exit, on Ctrl-C), exact resume, DDP.
* :class:`SeededSampler` / :func:`make_train_loader` — data order that survives resumes and is
  the same for any number of processes at a fixed global batch.
* :func:`train`, :data:`MODELS`, :data:`TRAINERS` — config-driven training of registered models
  (``MODELS["pconv"] = factory`` where ``factory(config) -> (model, loss_fn)``; ``TRAINERS["glcic"]
  = run`` for a model with a training run of its own). The command line is
  :mod:`fastinpaint.cli.train`.

Mask conventions: datasets and batches carry holes as 1 (``batch["mask"]``); models get
``valid_mask = 1 - hole`` (**1 = valid**), as partial convolutions take it.
"""

from fastinpaint.training.run import DEFAULTS, MODELS, TRAINERS, load_config, merge_config, train
from fastinpaint.training.sampler import SeededSampler
from fastinpaint.training.trainer import Trainer, atomic_torch_save, make_train_loader, seed_everything

# The models that ship with fastinpaint register themselves when imported.
from fastinpaint.training import glcic_run as _glcic_run  # noqa: F401  (TRAINERS["glcic"])
from fastinpaint.training import pconv as _pconv  # noqa: F401  (MODELS["pconv"])

__all__ = ["Trainer", "SeededSampler", "make_train_loader", "train", "MODELS", "TRAINERS", "DEFAULTS",
           "load_config", "merge_config", "atomic_torch_save", "seed_everything"]
