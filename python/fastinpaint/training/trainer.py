"""A generic, resumable, DDP-ready trainer for inpainting networks.

Model interface: ``model(image_masked, valid_mask) -> output`` with float tensors
``image_masked (N, 3, H, W)`` (the image in [0, 1] with hole pixels set to 0),
``valid_mask (N, 1, H, W)`` (**1 = valid, 0 = hole**, as partial convolutions take it) and
``output (N, 3, H, W)`` in the image's space. Loss interface:
``loss_fn(output, target, valid_mask) -> {"total": tensor, other terms…}`` (the signature of
:class:`fastinpaint.losses.InpaintingLoss`).

Batches from the loader are ``{"image": (N,3,H,W) in [0,1], "mask": (N,1,H,W), 1 = hole}``
dicts (as :class:`fastinpaint.data.InpaintingDataset` gives) or ``(image, hole_mask)`` pairs.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
import random
import signal
import threading
import time
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch

from fastinpaint import metrics
from fastinpaint.nn import _checkpoint
from fastinpaint.training import distributed as fdist
from fastinpaint.training.sampler import SeededSampler

CHECKPOINT_FORMAT = "fastinpaint.trainer/1"


def seed_everything(seed: int) -> None:
    """Seeds Python's ``random``, NumPy's global RNG and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> Dict[str, Any]:
    """The state of every RNG a training step may draw from (torch CPU/CUDA, NumPy, Python)."""
    # NumPy's key array as a tensor: a checkpoint then holds only tensors and plain containers,
    # which torch.load(weights_only=True) reads without running code from the file.
    name, keys, *rest = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": (name, torch.from_numpy(keys.astype(np.int64)), *rest),
             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restores what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else keys  # an array in older checkpoints
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj: Any, path: Union[str, os.PathLike]) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace``.

    A reader (or a crash at any moment) sees either the old file or the complete new one.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def autocast(enabled: bool):
    """float16 autocast on CUDA when ``enabled`` (the trainers' AMP), else a no-op context."""
    return torch.autocast("cuda", dtype=torch.float16) if enabled else contextlib.nullcontext()


def backward_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler=None,
                  grad_clip: Optional[float] = None) -> None:
    """``loss.backward()`` then ``optimizer.step()`` — through the AMP ``GradScaler`` when given,
    with the gradient norm of the optimizer's parameters clipped to ``grad_clip`` when set."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if scaler is not None:
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()


def unpack_batch(batch: Any, who: str = "Trainer") -> Tuple[torch.Tensor, torch.Tensor]:
    """``(image (N, C, H, W), hole (N, 1, H, W))`` of a batch: a ``{"image", "mask"}`` dict (what
    :class:`fastinpaint.data.InpaintingDataset` gives) or an ``(image, hole)`` pair. A ``(N, H, W)``
    mask gets its channel axis; the values are left as they are. ``who`` names the caller in errors.

    Raises:
        KeyError / TypeError: not such a batch.
        ValueError: the image is not 4-D, or the mask does not match it.
    """
    if isinstance(batch, Mapping):
        if "image" not in batch or "mask" not in batch:
            raise KeyError(f"{who}: batch dict needs 'image' and 'mask' entries, got {sorted(batch)}")
        image, hole = batch["image"], batch["mask"]
    elif isinstance(batch, (tuple, list)) and len(batch) == 2:
        image, hole = batch
    else:
        raise TypeError(f"{who}: a batch must be {{'image': ..., 'mask': ...}} or (image, hole_mask)")
    if image.dim() != 4:
        raise ValueError(f"{who}: image must be (N, C, H, W), got shape {tuple(image.shape)}")
    if hole.dim() == 3:
        hole = hole.unsqueeze(1)
    if hole.dim() != 4 or hole.shape[1] != 1 or hole.shape[0] != image.shape[0] or hole.shape[2:] != image.shape[2:]:
        raise ValueError(f"{who}: mask must be (N, 1, H, W) matching image {tuple(image.shape)}, "
                         f"got shape {tuple(hole.shape)}")
    return image, hole


def _grid_image(rows: list) -> "np.ndarray":
    """Tiles ``[(masked, output, target), …]`` (each (3,H,W) in [0,1]) into one uint8 HxWx3 array."""
    pad = 2
    tiles = []
    for triple in rows:
        tiles.append(torch.cat([torch.nn.functional.pad(t.clamp(0, 1), (pad, pad, pad, pad), value=1.0)
                                for t in triple], dim=2))
    grid = torch.cat(tiles, dim=1)
    return (grid.permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


#: The files of a run in its ``out_dir`` (relative paths): what ``fastinpaint train`` refuses to
#: replace without ``--resume`` or ``--overwrite``, and what a fresh :meth:`Trainer.fit` with
#: ``overwrite`` removes before its first step.
RUN_FILES = ("checkpoints/last.pt", "model.pt", "log.jsonl")


def earlier_run_files(out_dir: Union[str, os.PathLike]) -> List[str]:
    """The :data:`RUN_FILES` that exist in ``out_dir``."""
    return [name for name in RUN_FILES if (pathlib.Path(out_dir) / name).is_file()]


class Trainer:
    """Trains ``model`` with ``loss_fn``, with checkpoints, exact resume, validation and DDP.

    * **Progress**: a tqdm bar (rank 0) with the loss terms; ``log.jsonl`` in ``out_dir``;
      TensorBoard scalars/images in ``out_dir/tb`` when ``tensorboard`` is installed.
    * **Validation** every ``val_every`` steps (rank 0): PSNR and SSIM of the composite over
      ``val_loader``, and ``out_dir/val/step_XXXXXXX.png``, a grid of masked input | output |
      ground truth for the first batch's first ``val_images`` samples.
    * **Checkpoints** (rank 0), written atomically to ``out_dir/checkpoints/last.pt`` every
      ``checkpoint_every`` steps, at the end, and on Ctrl-C (KeyboardInterrupt: the step in
      progress is finished, the checkpoint saved, then the interrupt re-raised; a second Ctrl-C
      interrupts at once). A run killed at any moment loses at most ``checkpoint_every`` steps.
    * **Resume** (:meth:`fit` with ``resume``) restores the step, model, optimizer, scheduler,
      AMP scaler, the RNGs of every rank (torch, CUDA, NumPy, Python) and the data order (the
      loader's :class:`SeededSampler` is moved to the samples already consumed), so an
      interrupted and resumed run ends with the same weights as an uninterrupted one.
    * **DDP**: when ``torch.distributed`` is initialised (see
      :func:`fastinpaint.training.distributed.init_distributed`; ``torchrun`` launches), the model
      is wrapped in ``DistributedDataParallel``; the loader should use a :class:`SeededSampler`
      (see :func:`make_train_loader`), so that the global batch is the same samples whatever the
      number of processes.

    Args:
        model: ``model(image_masked, valid_mask) -> output`` (see the module docstring).
        loss_fn: ``loss_fn(output, target, valid_mask) -> dict`` with a ``"total"`` entry.
        optimizer: over ``model``'s parameters.
        train_loader: yields ``{"image", "mask"}`` batches (mask 1 = hole), endless or not (a
            finite loader is restarted). Per-process batches under DDP.
        out_dir: where checkpoints, logs and validation grids go.
        max_steps: default number of optimizer steps for :meth:`fit`.
        checkpoint_every: steps between checkpoints (0: only at the end / on interrupt).
        val_loader: validation batches (same format), or None.
        val_every: steps between validations (default ``checkpoint_every``).
        seed: seeds the RNGs at the start of a fresh run (``seed + rank``).
        amp: mixed precision (float16 autocast + gradient scaling) on CUDA; ignored, with a
            warning, on the CPU.
        deterministic: ``torch.use_deterministic_algorithms(True)``, no cuDNN benchmarking.
        device: default ``cuda:LOCAL_RANK`` if available, else the CPU.
        scheduler: optional LR scheduler, stepped after every optimizer step.
        grad_clip: clip the gradient norm to this value.
        log_every: steps between ``log.jsonl`` lines.
        val_images: samples shown in the validation grid.
        progress: show the progress bar.
        config: a JSON-able dict stored in checkpoints (for the record).
        overwrite: a :meth:`fit` that does not resume first removes the earlier run's
            :data:`RUN_FILES` (``log.jsonl`` restarts instead of being appended to). Without it
            ``log.jsonl`` is appended to, and the checkpoint and ``model.pt`` are replaced when
            written.

    Subclasses with other networks or steps (GLCIC's
    :class:`~fastinpaint.training.glcic_run.GLCICTrainer`) override :meth:`train_step`,
    :meth:`network_state` / :meth:`load_network_state` (what the checkpoint holds besides the
    step, RNG and data position), :meth:`predict` (validation) and :meth:`step_info` (extra
    fields of the log lines), and set :attr:`checkpoint_format`.

    Example:
        A tiny run (real ones: ``PConvUNet()``, ``InpaintingLoss()``, 256-px crops, batch 8,
        ``max_steps=10000``, ``checkpoint_every=500``):

        >>> import os, tempfile, numpy as np, torch
        >>> from PIL import Image
        >>> from fastinpaint.data import ImageFolder, InpaintingDataset
        >>> from fastinpaint.losses import InpaintingLoss, VGG16Features
        >>> from fastinpaint.masks import IrregularMaskDataset
        >>> from fastinpaint.nn import PConvUNet
        >>> from fastinpaint.training.trainer import Trainer, make_train_loader
        >>> photos, run = tempfile.mkdtemp(), tempfile.mkdtemp()    # e.g. "photos", "runs/a"
        >>> for i in range(4):
        ...     Image.fromarray(np.random.randint(0, 256, (80, 80, 3), np.uint8)).save(f"{photos}/{i}.png")
        >>> dataset = InpaintingDataset(ImageFolder(photos, 64), IrregularMaskDataset(64, seed=0))
        >>> net = PConvUNet(layers=4, base_channels=8, max_channels=16)
        >>> trainer = Trainer(net, InpaintingLoss(VGG16Features(pretrained=False)),
        ...                   torch.optim.Adam(net.parameters(), 2e-4), make_train_loader(dataset, batch_size=2),
        ...                   out_dir=run, max_steps=2, checkpoint_every=1, seed=0, progress=False)
        >>> logs = trainer.fit()
        >>> logs = trainer.fit(max_steps=3, resume=True)   # continues from the last checkpoint
        fastinpaint train: resumed from .../checkpoints/last.pt at step 2
        >>> trainer.step, os.path.isfile(os.path.join(run, "checkpoints", "last.pt"))
        (3, True)
    """

    #: Whether the last :meth:`fit` resumed a run already at ``max_steps`` or past it, and so trained
    #: nothing (nor saved a checkpoint): the callers then leave the run's ``model.pt`` as it is.
    nothing_to_train = False

    checkpoint_format = CHECKPOINT_FORMAT

    def __init__(self, model: torch.nn.Module, loss_fn: Optional[Callable], optimizer: torch.optim.Optimizer,
                 train_loader, *, out_dir: Union[str, os.PathLike], max_steps: Optional[int] = None,
                 checkpoint_every: int = 1000, val_loader=None, val_every: Optional[int] = None, seed: int = 0,
                 amp: bool = False, deterministic: bool = False, device: Optional[Union[str, torch.device]] = None,
                 scheduler=None, grad_clip: Optional[float] = None, log_every: int = 10, val_images: int = 4,
                 progress: bool = True, config: Optional[Mapping[str, Any]] = None,
                 time_limit: Optional[float] = None, overwrite: bool = False) -> None:
        self.rank = fdist.get_rank()
        self.world_size = fdist.get_world_size()
        self.is_main = self.rank == 0
        self.device = torch.device(device) if device is not None else fdist.default_device()
        # BatchNorm over the global batch, so N processes train like one (no-op in one process)
        self.model = fdist.sync_batchnorm(model).to(self.device)
        self.loss_fn = loss_fn.to(self.device) if isinstance(loss_fn, torch.nn.Module) else loss_fn
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.out_dir = pathlib.Path(out_dir)
        self.max_steps = max_steps
        self.checkpoint_every = int(checkpoint_every)
        self.val_every = int(val_every if val_every is not None else checkpoint_every)
        self.seed = int(seed)
        self.grad_clip = grad_clip
        self.log_every = max(1, int(log_every))
        self.val_images = int(val_images)
        self.progress = progress
        self.config = dict(config or {})
        self.overwrite = bool(overwrite)
        if time_limit is not None and not (isinstance(time_limit, (int, float)) and math.isfinite(time_limit)
                                           and time_limit > 0):
            raise ValueError(f"time_limit must be a positive number of minutes, got {time_limit!r}")
        # Wall-clock budget of one fit() call: a recipe that must end in N minutes on hardware
        # whose speed nobody measured (a GPU) stops there, saves, and exports like a finished run.
        self.time_limit = None if time_limit is None else float(time_limit)
        self.step = 0
        self.last_val: Dict[str, float] = {}
        if amp and self.device.type != "cuda":
            warnings.warn("amp=True is only used on CUDA; training in float32 on the CPU", RuntimeWarning)
        self.amp = bool(amp) and self.device.type == "cuda"
        self.scaler = self.new_scaler()
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        self.ddp_model = self.wrap_ddp(self.model)
        self.sampler = self._find_sampler(train_loader)
        self._rng_snapshot: Optional[Dict[str, Any]] = None
        self._stop_requested = False
        self._writer = None
        self._writer_tried = False

    def new_scaler(self) -> Optional["torch.amp.GradScaler"]:
        """A CUDA ``GradScaler`` under AMP (one per optimizer), else None."""
        return torch.amp.GradScaler("cuda") if self.amp else None

    def wrap_ddp(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` in ``DistributedDataParallel`` under a process group, else ``module`` itself."""
        if not fdist.is_dist():
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)

    # --- paths ----------------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> pathlib.Path:
        """``out_dir/checkpoints/last.pt``."""
        return self.out_dir / "checkpoints" / "last.pt"

    @staticmethod
    def _find_sampler(loader) -> Optional[SeededSampler]:
        s = getattr(loader, "sampler", None)
        if isinstance(s, SeededSampler):
            return s
        bs = getattr(loader, "batch_sampler", None)
        s = getattr(bs, "sampler", None)
        return s if isinstance(s, SeededSampler) else None

    def _batch_size(self) -> int:
        bs = getattr(self.train_loader, "batch_size", None)
        if bs is None:
            raise ValueError("the train loader needs a fixed batch_size to resume its data order")
        return int(bs)

    # --- checkpoints ----------------------------------------------------------------------------

    def state_dict(self, rng: Optional[list] = None) -> Dict[str, Any]:
        """Everything a resume needs (``rng``: the per-rank RNG states; default this rank's now)."""
        return {
            "format": self.checkpoint_format,
            "step": self.step,
            **self.network_state(),
            "rng": rng if rng is not None else [self._rng_snapshot or rng_state()],
            "world_size": self.world_size,
            "global_batch": self._batch_size() * self.world_size if self.sampler is not None else None,
            "sampler": self.sampler.state_dict() if self.sampler is not None else None,
            "seed": self.seed,
            "config": self.config,
            "last_val": self.last_val,
        }

    def network_state(self) -> Dict[str, Any]:
        """The networks, optimizers, scheduler and AMP scaler as checkpoint entries."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }

    def load_network_state(self, ckpt: Mapping[str, Any]) -> None:
        """Restores what :meth:`network_state` wrote (a scaler state only when both runs use AMP)."""
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler") is not None:
            self.scaler.load_state_dict(ckpt["scaler"])

    def save_checkpoint(self, path: Optional[Union[str, os.PathLike]] = None, collective: bool = True) -> None:
        """Writes the checkpoint (rank 0), atomically.

        Under DDP every rank must call this at the same step (``collective``): the RNG states
        of all ranks are gathered so that each resumes its own. ``collective=False`` saves rank 0's
        states only (used when the ranks are not in step).
        """
        states = [self._rng_snapshot or rng_state()]
        if fdist.is_dist() and collective:
            gathered: list = [None] * self.world_size
            torch.distributed.all_gather_object(gathered, states[0])
            states = gathered
        if self.sampler is not None:
            self.sampler.set_position(self.step * self._batch_size() * self.world_size)
        if self.is_main:
            atomic_torch_save(self.state_dict(rng=states), path or self.checkpoint_path)

    def load_checkpoint(self, path: Union[str, os.PathLike]) -> None:
        """Restores a checkpoint written by :meth:`save_checkpoint` (every rank reads the file).

        Read with ``torch.load(weights_only=True)`` (tensors and plain containers; the NumPy
        arrays of older checkpoints' RNG states too): no code from the file runs.
        """
        ckpt = _checkpoint.read(path, numpy_arrays=True)
        if ckpt.get("format") != self.checkpoint_format:
            raise ValueError(f"{path} is not a {self.checkpoint_format} checkpoint (format {ckpt.get('format')!r})")
        self.load_network_state(ckpt)
        self.step = int(ckpt["step"])
        self.last_val = dict(ckpt.get("last_val") or {})
        states = ckpt["rng"]
        if len(states) == self.world_size:
            set_rng_state(states[self.rank])
        else:
            warnings.warn(f"checkpoint was written by {len(states)} process(es), this run has {self.world_size}: "
                          "RNG states are re-seeded, so the run will not repeat the original exactly", RuntimeWarning)
            seed_everything(self.seed + 7919 * self.step + self.rank)
        if self.sampler is not None:
            if ckpt.get("sampler") is not None:
                try:
                    self.sampler.load_state_dict(ckpt["sampler"])
                except ValueError as err:  # data added/removed: go on, but say it is not exact
                    warnings.warn(f"{err}; the data order continues but differs from the original run",
                                  RuntimeWarning)
            gb = ckpt.get("global_batch")
            if gb is not None and gb != self._batch_size() * self.world_size:
                warnings.warn(f"global batch changed from {gb} to {self._batch_size() * self.world_size}: the data "
                              "order continues from the samples consumed so far", RuntimeWarning)
            self.sampler.set_position(self.step * (gb or self._batch_size() * self.world_size))
        elif self.step:
            warnings.warn("the train loader has no SeededSampler: its data order is not restored", RuntimeWarning)
        self._rng_snapshot = rng_state()

    # --- the loop -------------------------------------------------------------------------------

    def _autocast(self):
        return autocast(self.amp)

    def train_step(self, batch) -> Dict[str, float]:
        """One optimizer step on ``batch``; returns the loss terms as floats."""
        image, hole = unpack_batch(batch)
        image = image.to(self.device, non_blocking=True).float()
        hole = hole.to(self.device, non_blocking=True).float()
        valid = 1.0 - hole
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            output = self.ddp_model(image * valid, valid)
            terms = self.loss_fn(output.float() if self.amp else output, image, valid)
        if not isinstance(terms, Mapping) or "total" not in terms:
            raise TypeError("loss_fn must return a dict with a 'total' entry")
        backward_step(terms["total"], self.optimizer, self.scaler, self.grad_clip)
        if self.scheduler is not None:
            self.scheduler.step()
        return {k: float(v.detach()) for k, v in terms.items()}

    def step_info(self) -> Dict[str, Any]:
        """Fields other than the losses for the progress bar and the log lines of the last step."""
        return {}

    def log_due(self, max_steps: int) -> bool:
        """Whether the step just finished gets a ``log.jsonl`` line."""
        return self.step % self.log_every == 0 or self.step == max_steps

    def _new_iterator(self):
        # A DataLoader draws its base seed from the global torch RNG when an iterator is made;
        # forking keeps that draw out of the training RNG stream, which a resume restores.
        with torch.random.fork_rng(devices=[]):
            return iter(self.train_loader)

    def _on_sigint(self, signum, frame) -> None:
        if os.getpid() != self._pid:  # a forked data-loader worker: the main process decides
            return
        if self._stop_requested:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._stop_requested = True
        if self.is_main:
            print("\nfastinpaint train: interrupt received; finishing this step and saving a checkpoint "
                  "(Ctrl-C again to stop at once)", flush=True)

    def _should_stop(self) -> bool:
        if not fdist.is_dist():
            return self._stop_requested
        flag = torch.tensor([1.0 if self._stop_requested else 0.0],
                            device=self.device if torch.distributed.get_backend() == "nccl" else "cpu")
        torch.distributed.all_reduce(flag)
        return bool(flag.item() > 0)

    def _time_up(self, t_start: float) -> bool:
        """Whether this fit() call has used its ``time_limit``; every rank takes rank 0's decision
        (clocks differ), so all stop at the same step."""
        if self.time_limit is None:
            return False
        up = time.perf_counter() - t_start >= 60.0 * self.time_limit
        if not fdist.is_dist():
            return up
        flag = torch.tensor([1.0 if up else 0.0],
                            device=self.device if torch.distributed.get_backend() == "nccl" else "cpu")
        torch.distributed.broadcast(flag, 0)
        return bool(flag.item() > 0)

    def fit(self, max_steps: Optional[int] = None, resume: Union[bool, str, os.PathLike, None] = False) -> Dict[str, float]:
        """Trains until ``max_steps`` optimizer steps in all (counting those before a resume).

        Args:
            max_steps: total steps (default the constructor's).
            resume: True to continue from ``out_dir/checkpoints/last.pt`` when it exists, or a
                checkpoint path (which must exist); False starts afresh.

        With ``time_limit`` (minutes) it also stops at the first step boundary after that much
        wall time, saves a checkpoint and returns as if finished.

        Returns:
            The last step's loss terms (and the last validation's metrics, ``val_*``).

        Raises:
            KeyboardInterrupt: after the checkpoint on Ctrl-C is written.
        """
        max_steps = int(max_steps if max_steps is not None else (self.max_steps or 0))
        if max_steps <= 0:
            raise ValueError("max_steps must be positive")
        resumed = False
        if resume:
            path = self.checkpoint_path if resume is True else pathlib.Path(resume)
            exists = path.is_file()
            if fdist.is_dist():  # every rank must take the same decision
                seen: list = [None] * self.world_size
                torch.distributed.all_gather_object(seen, exists)
                if any(seen) and not all(seen):
                    raise RuntimeError(f"checkpoint {path} is visible to ranks {[r for r, s in enumerate(seen) if s]} "
                                       "only: put out_dir on a filesystem that every node shares (or copy it there)")
            if exists:
                self.load_checkpoint(path)
                resumed = True
                if self.is_main:
                    print(f"fastinpaint train: resumed from {path} at step {self.step}", flush=True)
            elif resume is not True:
                raise FileNotFoundError(f"checkpoint not found: {path}")
        self.nothing_to_train = resumed and self.step >= max_steps
        if self.nothing_to_train:  # it saved the checkpoint again and rewrote model.pt, saying nothing
            if self.is_main:
                print(f"fastinpaint train: the run is already at step {self.step} >= --steps {max_steps}; "
                      f"nothing to train", flush=True)
            return {}
        if not resumed:
            if self.overwrite and self.is_main:  # starting over: nothing of the earlier run is mixed in
                for name in RUN_FILES:
                    (self.out_dir / name).unlink(missing_ok=True)
            seed_everything(self.seed + self.rank)
            if self.sampler is not None:
                self.sampler.set_position(0)
        self._rng_snapshot = rng_state()
        self.model.train()

        handler_installed = False
        self._pid = os.getpid()
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._on_sigint)
            handler_installed = True
        bar = None
        if self.progress and self.is_main:
            from tqdm import tqdm

            bar = tqdm(total=max_steps, initial=self.step, desc="train", dynamic_ncols=True)
        logs: Dict[str, float] = {}
        saved_at = -1
        data = self._new_iterator()
        t_start, s_start = time.perf_counter(), self.step
        try:
            while self.step < max_steps:
                if self._should_stop():
                    raise KeyboardInterrupt
                if self._time_up(t_start):
                    if self.is_main:
                        print(f"\nfastinpaint train: time limit of {self.time_limit:g} min reached at step "
                              f"{self.step} of {max_steps}; --resume continues", flush=True)
                    break
                try:
                    batch = next(data)
                except StopIteration:  # a finite loader: start it again
                    data = self._new_iterator()
                    batch = next(data)
                except RuntimeError:
                    # A terminal's Ctrl-C also reaches the loader's workers, which then exit; the
                    # loader reports them dead. That is the interrupt, not a failure: save.
                    if self._stop_requested:
                        raise KeyboardInterrupt from None
                    raise
                logs = self.train_step(batch)
                if not all(math.isfinite(v) for v in logs.values()):
                    warnings.warn(f"non-finite loss at step {self.step + 1}: {logs}", RuntimeWarning)
                self.step += 1
                self._rng_snapshot = rng_state()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({**self.step_info(), **{k: f"{v:.4g}" for k, v in logs.items()}},
                                    refresh=False)
                if self.is_main and self.log_due(max_steps):
                    rate = (self.step - s_start) / max(1e-9, time.perf_counter() - t_start)
                    self._log({**self.step_info(), **{f"loss/{k}": v for k, v in logs.items()},
                               "steps_per_s": rate})
                if self.val_loader is not None and self.val_every > 0 and self.step % self.val_every == 0:
                    self.validate()
                if self.checkpoint_every > 0 and self.step % self.checkpoint_every == 0:
                    self.save_checkpoint()
                    saved_at = self.step
            if saved_at != self.step:
                self.save_checkpoint()
        except KeyboardInterrupt:
            # The model and optimizer are as after step self.step (Ctrl-C is deferred to step
            # boundaries); save them with the RNG states of that boundary.
            coordinated = self._stop_requested or not fdist.is_dist()
            if saved_at != self.step:
                self.save_checkpoint(collective=coordinated)
            if self.is_main:
                print(f"\nfastinpaint train: interrupted; checkpoint at step {self.step} in {self.checkpoint_path}",
                      flush=True)
            raise
        finally:
            if handler_installed:
                signal.signal(signal.SIGINT, previous)
            self._stop_requested = False
            if bar is not None:
                bar.close()
            if self._writer is not None:
                self._writer.flush()
        return {**logs, **{f"val_{k}": v for k, v in self.last_val.items()}}

    # --- validation and logging -----------------------------------------------------------------

    @torch.no_grad()
    def validate(self) -> Dict[str, float]:
        """PSNR/SSIM of the composite over ``val_loader`` and a grid image (rank 0 only).

        Runs under ``torch.random.fork_rng`` so that it does not change the training RNG stream.
        """
        if not self.is_main or self.val_loader is None:
            return {}
        was_training = self.model.training
        self.model.eval()
        psnrs, ssims, grid_rows = [], [], []
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            for batch in self.val_loader:
                image, hole = unpack_batch(batch)
                image = image.to(self.device).float()
                hole = hole.to(self.device).float()
                valid = 1.0 - hole
                masked = image * valid
                with self._autocast():
                    out = self.predict(masked, valid)
                out = out.float().clamp(0, 1)
                comp = valid * image + hole * out
                psnrs.append(metrics.psnr(image.clamp(0, 1), comp, data_range=1.0).cpu())
                ssims.append(metrics.ssim(image.clamp(0, 1), comp, data_range=1.0).cpu())
                for i in range(min(image.shape[0], self.val_images - len(grid_rows))):
                    shown = masked[i] + hole[i]  # holes white
                    grid_rows.append((shown.cpu(), out[i].cpu(), image[i].cpu()))
        self.model.train(was_training)
        if not psnrs:
            return {}
        result = {"psnr": float(torch.cat(psnrs).mean()), "ssim": float(torch.cat(ssims).mean())}
        self.last_val = result
        grid = _grid_image(grid_rows)
        from PIL import Image

        path = self.out_dir / "val" / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(path)
        self._log({f"val/{k}": v for k, v in result.items()}, image=grid)
        return result

    def predict(self, image_masked: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The network's output for validation (``valid``: 1 = valid; holes of the image zeroed)."""
        return self.model(image_masked, valid)

    def _tensorboard(self):
        if not self._writer_tried:
            self._writer_tried = True
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: log.jsonl only
                SummaryWriter = None
            if SummaryWriter is not None:
                self._writer = SummaryWriter(log_dir=str(self.out_dir / "tb"))
        return self._writer

    def _log(self, values: Dict[str, float], image: Optional[np.ndarray] = None) -> None:
        if not self.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "log.jsonl", "a") as f:
            f.write(json.dumps({"step": self.step, "time": time.time(), **values}) + "\n")
        writer = self._tensorboard()
        if writer is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)):  # not the text fields of step_info (GLCIC's phase)
                    writer.add_scalar(k, v, self.step)
            if image is not None:
                writer.add_image("val/grid", image, self.step, dataformats="HWC")


def make_train_loader(dataset, batch_size: int, seed: int = 0, num_workers: int = 0, shuffle: bool = True,
                      pin_memory: Optional[bool] = None) -> torch.utils.data.DataLoader:
    """An endless DataLoader with a :class:`SeededSampler` (the trainer restores its position).

    Args:
        dataset: map-style dataset accepting indices beyond its length (those of
            :mod:`fastinpaint.data` do).
        batch_size: **per-process** batch (the global batch is ``batch_size × world size``).
        seed: data-order seed.
        num_workers: loader worker processes.
        shuffle: seeded shuffling (else sequential).
        pin_memory: default: when CUDA is available.
    """
    sampler = SeededSampler(dataset, seed=seed, shuffle=shuffle)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=num_workers > 0)
