"""Training: a generic resumable, DDP-ready :class:`Trainer`, and ``fastinpaint train``.

* :class:`Trainer` — progress bar with loss terms, validation grids and PSNR/SSIM, TensorBoard
  when installed, atomic checkpoints (every N steps, at exit, on Ctrl-C), exact resume, DDP.
* :class:`SeededSampler` / :func:`make_train_loader` — data order that survives resumes and is
  the same for any number of processes at a fixed global batch.
* :func:`train`, :data:`MODELS`, :func:`add_train_subcommand` — config-driven training of
  registered models (``MODELS["pconv"] = factory`` where ``factory(config) -> (model, loss_fn)``).

Mask conventions: datasets and batches carry holes as 1 (``batch["mask"]``); models get
``valid_mask = 1 - hole`` (**1 = valid**), as partial convolutions take it.
"""

from fastinpaint.training.run import DEFAULTS, MODELS, add_train_subcommand, load_config, merge_config, train
from fastinpaint.training.sampler import SeededSampler
from fastinpaint.training.trainer import Trainer, atomic_torch_save, make_train_loader, seed_everything

__all__ = ["Trainer", "SeededSampler", "make_train_loader", "train", "MODELS", "DEFAULTS", "add_train_subcommand",
           "load_config", "merge_config", "atomic_torch_save", "seed_everything"]

from fastinpaint.training import pconv as _pconv  # noqa: E402,F401  (registers MODELS["pconv"])
