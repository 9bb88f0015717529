"""``fastinpaint train``: a config file (TOML, or YAML with PyYAML) and/or flags → :class:`Trainer`.

Models come from the registry :data:`MODELS`: ``name → factory(config) -> (model, loss_fn)``.
The factory gets the merged config (a dict with every key of :data:`DEFAULTS`) and returns a
model with the trainer's interface — ``model(image_masked, valid_mask)`` on [0, 1] images,
**1 = valid** — and ``loss_fn(output, target, valid_mask) -> {"total": …}``; it should honour
``finetune`` (e.g. freeze the encoder's BatchNorm), ``loss_weights`` and ``model_options``.

Single process::

    fastinpaint train --config train.toml
    fastinpaint train --model pconv --images places/train --val-images places/val --size 256 \\
        --batch-size 8 --steps 100000 --out runs/pconv

Several processes (one per GPU, or CPU processes with gloo), one machine::

    torchrun --standalone --nproc-per-node 4 -m fastinpaint.training --config train.toml

Several machines (run on each, ``--node-rank`` 0 … N-1; HOST is node 0's address)::

    torchrun --nnodes 2 --nproc-per-node 8 --node-rank 0 --rdzv-backend c10d \\
        --rdzv-endpoint HOST:29500 --rdzv-id myrun -m fastinpaint.training --config train.toml

``batch_size`` is the **global** batch: it is split evenly across the processes, so a run gives
the same samples per step however many processes share it.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, Union

import torch

#: name → factory(config) -> (model, loss_fn). The PConvUNet integration adds "pconv".
MODELS: Dict[str, Callable[[Dict[str, Any]], Tuple[torch.nn.Module, Callable]]] = {}

#: Every config key with its default. ``lr`` None means 2e-4, or 5e-5 with ``finetune``.
DEFAULTS: Dict[str, Any] = {
    "model": "pconv",
    "images": None,            # training image folder (recursive)
    "masks": None,             # mask folder (non-zero = hole); None: generated irregular masks
    "val_images": None,        # validation image folder; None: no validation
    "val_count": 8,            # validation pairs (centre crops, fixed generated masks)
    "out_dir": "runs/train",
    "size": 256,               # training crop size (int or [H, W])
    "batch_size": 8,           # GLOBAL batch, split across processes
    "steps": 1000,
    "lr": None,
    "finetune": False,         # fine-tuning stage: frozen encoder BN (the factory's job), lr 5e-5
    "init_weights": None,      # start from these weights (a state dict, or a checkpoint with "model")
    "seed": 0,
    "num_workers": 2,
    "checkpoint_every": 500,
    "val_every": None,         # default: checkpoint_every
    "log_every": 10,
    "amp": False,
    "deterministic": False,
    "resume": False,           # True: continue from out_dir/checkpoints/last.pt; or a path
    "buckets": "all",          # generated-mask buckets ("all" or "0.1-0.2;0.2-0.3")
    "border": "random",        # generated masks: true, false or "random"
    "hflip": True,
    "grad_clip": None,
    "loss_weights": {},
    "model_options": {},
    "progress": True,
    # GLCIC only (`model = "glcic"`, see fastinpaint.training.glcic_run): phase lengths in steps
    # (completion-only MSE, then discriminator-only, then joint until `steps`) and the weight of
    # the adversarial loss; its model_options: width, local_size, disc_width, disc_features, fill_mean.
    "glcic_completion_steps": 500,
    "glcic_discriminator_steps": 100,
    "glcic_alpha": 4e-4,
}


def load_config(path: Union[str, pathlib.Path]) -> Dict[str, Any]:
    """Reads a TOML (``tomllib``) or YAML (PyYAML, if installed) config file into a dict.

    Keys may sit at the top level or in a ``[train]`` table.

    Raises:
        ValueError: unknown format, parse errors, or YAML without PyYAML.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            import tomllib
        except ImportError:  # Python < 3.11
            try:
                import tomli as tomllib
            except ImportError:
                raise ValueError("TOML configs need Python 3.11+ or `pip install tomli`") from None
        with open(path, "rb") as f:
            try:
                data = tomllib.load(f)
            except tomllib.TOMLDecodeError as err:
                raise ValueError(f"{path}: {err}") from None
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"{path}: YAML configs need PyYAML (pip install pyyaml), or use TOML") from None
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    else:
        raise ValueError(f"{path}: config must be .toml, .yaml or .yml")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the config must be a table/mapping")
    if "train" in data and isinstance(data["train"], dict):
        data = {**{k: v for k, v in data.items() if k != "train"}, **data["train"]}
    return data


def merge_config(file_config: Optional[Mapping[str, Any]] = None, overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """``DEFAULTS`` ← file config ← overrides (None values in ``overrides`` are ignored).

    Raises:
        ValueError: unknown keys (the message lists the valid ones).
    """
    cfg = dict(DEFAULTS)
    for source in (file_config or {}), {k: v for k, v in (overrides or {}).items() if v is not None}:
        unknown = sorted(set(source) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; valid keys: {sorted(DEFAULTS)}")
        cfg.update(source)
    if cfg["lr"] is None:
        cfg["lr"] = 5e-5 if cfg["finetune"] else 2e-4
    return cfg


def _size(v) -> Tuple[int, int]:
    if isinstance(v, int):
        return v, v
    if isinstance(v, str):
        from fastinpaint.masks import parse_size

        return parse_size(v)
    return int(v[0]), int(v[1])


def build_datasets(cfg: Mapping[str, Any]):
    """The training and validation datasets a config describes."""
    from fastinpaint.data import ImageFolder, InpaintingDataset, MaskFolder
    from fastinpaint.masks import IrregularMaskDataset, parse_buckets

    if not cfg["images"]:
        raise ValueError("no training images: set `images` in the config or pass --images DIR")
    size = _size(cfg["size"])
    images = ImageFolder(cfg["images"], size=size, mode="crop", hflip=bool(cfg["hflip"]), seed=cfg["seed"])
    buckets = parse_buckets(cfg["buckets"]) if isinstance(cfg["buckets"], str) else cfg["buckets"]
    border = cfg["border"]
    if isinstance(border, str) and border.lower() in ("true", "false"):
        border = border.lower() == "true"
    if cfg["masks"]:
        masks = MaskFolder(cfg["masks"], size=size, augment=True, seed=cfg["seed"] + 1)
    else:
        masks = IrregularMaskDataset(size, buckets=buckets, seed=cfg["seed"] + 1, border=border)
    train = InpaintingDataset(images, masks)
    val = None
    if cfg["val_images"]:
        vi = ImageFolder(cfg["val_images"], size=size, mode="center", hflip=False, seed=0)
        vm = IrregularMaskDataset(size, buckets=buckets, seed=20240613, border=border)
        count = min(int(cfg["val_count"]), len(vi))
        val = torch.utils.data.Subset(InpaintingDataset(vi, vm), list(range(count)))
    return train, val


def init_processes(cfg: Mapping[str, Any]) -> int:
    """Joins the ``torchrun`` process group, if any, and checks that ``batch_size`` (global) splits
    evenly; returns the number of processes."""
    from fastinpaint.training.distributed import get_world_size, init_distributed

    init_distributed()
    world = get_world_size()
    if cfg["batch_size"] % world:
        raise ValueError(f"batch_size {cfg['batch_size']} (global) is not divisible by {world} processes")
    return world


def trainer_options(cfg: Mapping[str, Any], val_ds) -> Dict[str, Any]:
    """The :class:`Trainer` keyword arguments a merged config gives (every model's trainer)."""
    val_loader = None
    if val_ds is not None:
        val_loader = torch.utils.data.DataLoader(val_ds, batch_size=min(8, len(val_ds)), shuffle=False)
    return dict(out_dir=cfg["out_dir"], max_steps=int(cfg["steps"]), checkpoint_every=int(cfg["checkpoint_every"]),
                val_loader=val_loader, val_every=cfg["val_every"], seed=int(cfg["seed"]), amp=bool(cfg["amp"]),
                deterministic=bool(cfg["deterministic"]), grad_clip=cfg["grad_clip"],
                log_every=int(cfg["log_every"]), progress=bool(cfg["progress"]),
                config=json.loads(json.dumps(dict(cfg), default=str)))


def _load_init_weights(model: torch.nn.Module, path: str) -> None:
    state = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(state, Mapping) and "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    model.load_state_dict(state)


def train(config: Union[str, pathlib.Path, Mapping[str, Any], None] = None, **overrides: Any):
    """Trains a registered model from a config file or dict, merged with keyword overrides.

    Joins the ``torchrun`` process group when launched by it (NCCL on CUDA, gloo on CPU).

    Args:
        config: a ``.toml``/``.yaml`` path, a dict, or None (defaults + overrides).
        **overrides: config keys (see :data:`DEFAULTS`); None values are ignored.

    Returns:
        The :class:`Trainer` after training (for ``model = "glcic"``: the dict
        :func:`fastinpaint.training.glcic_run.train_glcic` returns). Models with an ``export(path)`` method (PConvUNet)
        are also written to ``out_dir/model.pt`` for inference (``--weights``).

    Example:
        >>> train("train.toml", steps=2000, out_dir="runs/b")   # doctest: +SKIP
    """
    from fastinpaint.training.trainer import Trainer, make_train_loader

    file_cfg = load_config(config) if isinstance(config, (str, pathlib.Path)) else dict(config or {})
    cfg = merge_config(file_cfg, overrides)
    # GLCIC has two networks and a three-phase schedule: a Trainer subclass (same loop,
    # checkpoints, validation and DDP) with its own step.
    if cfg["model"] == "glcic":
        from fastinpaint.training.glcic_run import train_glcic

        return train_glcic(cfg)
    if cfg["model"] not in MODELS:
        raise ValueError(f"unknown model {cfg['model']!r}; registered models: {sorted(MODELS) or 'none'}")
    world = init_processes(cfg)
    torch.manual_seed(cfg["seed"])  # the same initial weights on every rank and every run
    model, loss_fn = MODELS[cfg["model"]](cfg)
    if cfg["init_weights"]:
        _load_init_weights(model, cfg["init_weights"])
    train_ds, val_ds = build_datasets(cfg)
    loader = make_train_loader(train_ds, cfg["batch_size"] // world, seed=cfg["seed"], num_workers=cfg["num_workers"])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=float(cfg["lr"]))
    trainer = Trainer(model, loss_fn, optimizer, loader, **trainer_options(cfg, val_ds))
    trainer.fit(resume=cfg["resume"])
    # An inference-ready file beside the training checkpoints (those also hold optimizer and RNG
    # state, so they are not weights_only-loadable): what `--weights` takes.
    from fastinpaint.training.distributed import is_main_process

    if is_main_process() and hasattr(model, "export"):
        model.export(pathlib.Path(cfg["out_dir"]) / "model.pt")
    return trainer


# --- command line -------------------------------------------------------------------------------

_FLAGS = [  # (flag, config key, argparse kwargs)
    ("--model", "model", {"help": "model name from fastinpaint.training.MODELS (e.g. pconv), or glcic"}),
    ("--images", "images", {"help": "training image folder (recursive, any format Pillow reads)"}),
    ("--masks", "masks", {"help": "mask folder (non-zero = hole); default: generated irregular masks"}),
    ("--val-images", "val_images", {"help": "validation image folder"}),
    ("--val-count", "val_count", {"type": int, "help": "validation images (default 8)"}),
    ("--out", "out_dir", {"help": "output folder (checkpoints, log.jsonl, val grids, tb/)"}),
    ("--size", "size", {"help": "training crop size, N or HxW (default 256)"}),
    ("--batch-size", "batch_size", {"type": int, "help": "global batch size (default 8)"}),
    ("--steps", "steps", {"type": int, "help": "total optimizer steps (default 1000)"}),
    ("--lr", "lr", {"type": float, "help": "learning rate (default 2e-4; 5e-5 with --finetune)"}),
    ("--init-weights", "init_weights", {"help": "initial weights (state dict or checkpoint)"}),
    ("--seed", "seed", {"type": int, "help": "seed (default 0)"}),
    ("--workers", "num_workers", {"type": int, "help": "data-loader workers per process (default 2)"}),
    ("--checkpoint-every", "checkpoint_every", {"type": int, "help": "steps between checkpoints (default 500)"}),
    ("--val-every", "val_every", {"type": int, "help": "steps between validations (default: checkpoint interval)"}),
    ("--log-every", "log_every", {"type": int, "help": "steps between log lines (default 10)"}),
    ("--bucket", "buckets", {"help": "generated-mask buckets: 'all' or LO-HI[;LO-HI…]"}),
    ("--grad-clip", "grad_clip", {"type": float, "help": "clip the gradient norm"}),
    ("--glcic-completion-steps", "glcic_completion_steps",
     {"type": int, "help": "--model glcic: completion-only (MSE) steps (default 500)"}),
    ("--glcic-discriminator-steps", "glcic_discriminator_steps",
     {"type": int, "help": "--model glcic: discriminator-only steps after them (default 100)"}),
    ("--glcic-alpha", "glcic_alpha", {"type": float, "help": "--model glcic: adversarial weight (default 4e-4)"}),
]


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML or YAML config file; flags override its values")
    for flag, key, kw in _FLAGS:
        p.add_argument(flag, dest=key, default=None, **kw)
    p.add_argument("--finetune", dest="finetune", action="store_const", const=True, default=None,
                   help="fine-tuning stage (frozen encoder BatchNorm, lr 5e-5)")
    p.add_argument("--amp", dest="amp", action="store_const", const=True, default=None,
                   help="mixed precision on CUDA")
    p.add_argument("--deterministic", dest="deterministic", action="store_const", const=True, default=None,
                   help="deterministic algorithms only")
    p.add_argument("--resume", dest="resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                   help="continue from OUT/checkpoints/last.pt (or the given checkpoint)")
    p.add_argument("--no-progress", dest="progress", action="store_const", const=False, default=None,
                   help="no progress bar")


def _run_train(args: argparse.Namespace) -> int:
    overrides = {key: getattr(args, key) for _, key, _ in _FLAGS}
    for key in ("finetune", "amp", "deterministic", "resume", "progress"):
        overrides[key] = getattr(args, key)
    try:
        train(args.config, **overrides)
    except (ValueError, FileNotFoundError) as err:
        print(f"fastinpaint train: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        from fastinpaint.training.distributed import cleanup

        cleanup()
    return 0


def add_train_subcommand(subparsers) -> argparse.ArgumentParser:
    """Adds ``train`` to an ``argparse`` subparsers object; the handler is ``args.func(args) -> int``.

    ``--model`` is looked up in :data:`MODELS` when the command runs (so models registered after
    this call are available).
    """
    p = subparsers.add_parser("train", help="train an inpainting network (config file and/or flags; torchrun for DDP)",
                              description=__doc__.split("\n\n")[0] + " Under torchrun: multi-process DDP.",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_train_arguments(p)
    p.set_defaults(func=_run_train)
    return p


def main(argv: Optional[Iterable[str]] = None) -> int:
    """``python -m fastinpaint.training ...`` (what ``torchrun -m`` runs)."""
    parser = argparse.ArgumentParser(prog="python -m fastinpaint.training", description="Train an inpainting network.")
    _add_train_arguments(parser)
    args = parser.parse_args(None if argv is None else list(argv))
    return _run_train(args)
