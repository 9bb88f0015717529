"""Config-driven training: a config file (TOML, or YAML with PyYAML) and/or overrides → the
training run of a registered model.

Two registries say how a model name trains:

* :data:`MODELS` — ``name → factory(config) -> (model, loss_fn)``: one network trained by the
  generic :class:`~fastinpaint.training.trainer.Trainer` loop (:func:`train_model`). The factory
  gets the merged config (a dict with every key of :data:`DEFAULTS`) and returns a model with the
  trainer's interface — ``model(image_masked, valid_mask)`` on [0, 1] images, **1 = valid** — and
  ``loss_fn(output, target, valid_mask) -> {"total": …}``; it should honour ``finetune`` (e.g.
  freeze the encoder's BatchNorm), ``loss_weights`` and ``model_options``.
  :mod:`fastinpaint.training.pconv` adds ``"pconv"``.
* :data:`TRAINERS` — ``name → run(config) -> result``: a model with a training run of its own
  (GLCIC: two networks, three phases); :mod:`fastinpaint.training.glcic_run` adds ``"glcic"``.

The command line is ``fastinpaint train`` (:mod:`fastinpaint.cli.train`), also under ``torchrun``
as ``-m fastinpaint.training``. ``batch_size`` is the **global** batch: it is split evenly across
the processes, so a run gives the same samples per step however many processes share it.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch

from fastinpaint._terminal import draws_progress_bars
from fastinpaint.data import ImageFolder, InpaintingDataset, MaskFolder
from fastinpaint.nn import _checkpoint
from fastinpaint.masks import IrregularMaskDataset, parse_buckets, parse_size
from fastinpaint.training.distributed import get_world_size, init_distributed, is_main_process
from fastinpaint.training.trainer import Trainer, earlier_run_files, make_train_loader

#: name → factory(config) -> (model, loss_fn): one network, trained by :func:`train_model`.
#: The PConvUNet integration (:mod:`fastinpaint.training.pconv`) adds "pconv".
MODELS: Dict[str, Callable[[Dict[str, Any]], Tuple[torch.nn.Module, Callable]]] = {}
#: name → run(config) -> result: a model with a training run of its own, for what the one-network
#: loop cannot express. GLCIC (:mod:`fastinpaint.training.glcic_run`) adds "glcic".
TRAINERS: Dict[str, Callable[[Dict[str, Any]], Any]] = {}

#: Every config key with its default. ``lr`` None means 2e-4, or 5e-5 with ``finetune``.
DEFAULTS: Dict[str, Any] = {
    "model": "pconv",
    "images": None,            # training image folder (recursive)
    "masks": None,             # mask folder (grey > 127 = hole, fastinpaint.io); None: generated irregular masks
    "val_images": None,        # validation image folder; None: no validation
    "val_count": 8,            # validation pairs (centre crops, fixed generated masks), >= 1
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
    "time_limit": None,        # minutes of wall time for this run (None: none); stops, saves and exports
    "deterministic": False,
    "resume": False,           # True: continue from out_dir/checkpoints/last.pt; or a path
    "overwrite": False,        # True: start over in an out_dir that holds an earlier run (its files are removed)
    "buckets": "all",          # generated-mask buckets ("all" or "0.1-0.2;0.2-0.3")
    "border": "random",        # generated masks: true, false or "random"
    "hflip": True,
    "grad_clip": None,
    "loss_weights": {},
    "model_options": {},
    "progress": None,          # None: drawn when stderr is a terminal (fastinpaint._terminal), as eval's
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


def config_size(v) -> Tuple[int, int]:
    """A size from a config: ``N``, ``"N"``, ``"HxW"`` or ``[H, W]`` → ``(H, W)``."""
    if isinstance(v, int):
        return v, v
    if isinstance(v, str):
        return parse_size(v)
    return int(v[0]), int(v[1])


def check_config(cfg: Mapping[str, Any]) -> None:
    """The checks of a merged config that read no image and build no network, so that a mistake
    is reported before any expensive work: values, and an ``out_dir`` that holds an earlier run
    (which a run that neither resumes nor overwrites would destroy).

    Raises:
        ValueError: a bad value, or an earlier run in ``out_dir`` without ``resume`` or ``overwrite``.
    """
    h, w = config_size(cfg["size"])
    if h < 8 or w < 8:  # (the masks' own check said "mask size", of a size the user gave for crops)
        raise ValueError(f"size (--size, the side of the training crops and their masks) must be at least 8, "
                         f"got {h}x{w}")
    val_count = cfg["val_count"]
    if isinstance(val_count, bool) or not isinstance(val_count, int) or val_count < 1:
        raise ValueError(f"val_count (--val-count) must be an integer >= 1, got {val_count!r} "
                         "(it is the number of validation images; without val_images there is no validation)")
    if cfg["resume"] and cfg["overwrite"]:
        raise ValueError("--resume and --overwrite contradict each other; pass one")
    if not cfg["resume"] and not cfg["overwrite"]:
        found = earlier_run_files(cfg["out_dir"])
        if found:
            raise ValueError(f"{cfg['out_dir']} holds an earlier training run ({', '.join(found)}): "
                             "pass --resume to continue it, or --overwrite to start over (which removes them)")


def build_datasets(cfg: Mapping[str, Any]):
    """The training and validation datasets a config describes."""
    if not cfg["images"]:
        raise ValueError("no training images: set `images` in the config or pass --images DIR")
    size = config_size(cfg["size"])
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
                log_every=int(cfg["log_every"]),
                progress=draws_progress_bars() if cfg["progress"] is None else bool(cfg["progress"]),
                time_limit=None if cfg.get("time_limit") is None else float(cfg["time_limit"]),
                overwrite=bool(cfg.get("overwrite")),
                config=json.loads(json.dumps(dict(cfg), default=str)))


def load_init_weights(module: torch.nn.Module, path: str, entries: Sequence[str] = ("model",)) -> None:
    """Loads ``init_weights`` into ``module``: a bare state dict, or a file holding one under the
    first of ``entries`` it has (a training checkpoint's ``"model"``, a network file's
    ``"state_dict"``, …). Read with ``torch.load(weights_only=True)`` (training checkpoints' RNG
    states included): no code from the file runs."""
    state = _checkpoint.read(path, numpy_arrays=True)
    if isinstance(state, Mapping):
        state = next((state[k] for k in entries if isinstance(state.get(k), Mapping)), state)
    module.load_state_dict(state)


def train(config: Union[str, pathlib.Path, Mapping[str, Any], None] = None, **overrides: Any):
    """Trains a registered model from a config file or dict, merged with keyword overrides.

    Joins the ``torchrun`` process group when launched by it (NCCL on CUDA, gloo on the CPU).

    Args:
        config: a ``.toml``/``.yaml`` path, a dict, or None (defaults + overrides).
        **overrides: config keys (see :data:`DEFAULTS`); None values are ignored.

    Returns:
        What the model's run returns: for a :data:`MODELS` entry the :class:`Trainer` after
        training (see :func:`train_model`); for a :data:`TRAINERS` entry its own result (GLCIC:
        the dict :func:`fastinpaint.training.glcic_run.train_glcic` returns).

    Raises:
        ValueError: unknown config keys, an unknown model, bad values.

    Example:
        >>> train("train.toml", steps=2000, out_dir="runs/b")   # doctest: +SKIP
    """
    file_cfg = load_config(config) if isinstance(config, (str, pathlib.Path)) else dict(config or {})
    cfg = merge_config(file_cfg, overrides)
    name = cfg["model"]
    if name not in TRAINERS and name not in MODELS:
        raise ValueError(f"unknown model {name!r}; registered models: {sorted({*MODELS, *TRAINERS}) or 'none'}")
    check_config(cfg)
    return TRAINERS[name](cfg) if name in TRAINERS else train_model(cfg)


def train_model(cfg: Mapping[str, Any]):
    """The run of a :data:`MODELS` entry: its network and loss in the generic :class:`Trainer` loop,
    Adam with ``lr``, from a merged config.

    Returns:
        The :class:`Trainer` after training. Models with an ``export(path)`` method (PConvUNet)
        are also written to ``out_dir/model.pt`` for inference (``--weights``), unless the run was
        resumed at ``steps`` or past it (nothing trained).
    """
    world = init_processes(cfg)
    train_ds, val_ds = build_datasets(cfg)  # before the network and its loss (VGG16): the cheap checks first
    torch.manual_seed(cfg["seed"])  # the same initial weights on every rank and every run
    model, loss_fn = MODELS[cfg["model"]](cfg)
    if cfg["init_weights"]:
        load_init_weights(model, cfg["init_weights"])
    loader = make_train_loader(train_ds, cfg["batch_size"] // world, seed=cfg["seed"], num_workers=cfg["num_workers"])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=float(cfg["lr"]))
    trainer = Trainer(model, loss_fn, optimizer, loader, **trainer_options(cfg, val_ds))
    trainer.fit(resume=cfg["resume"])
    # An inference-ready file beside the training checkpoints (those also hold optimizer and RNG
    # state, so they are not weights_only-loadable): what `--weights` takes.
    if is_main_process() and hasattr(model, "export") and not trainer.nothing_to_train:
        model.export(pathlib.Path(cfg["out_dir"]) / "model.pt")
        print(f"fastinpaint train: wrote {pathlib.Path(cfg['out_dir']) / 'model.pt'} (step {trainer.step})", flush=True)
    return trainer
