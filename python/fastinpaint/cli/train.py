"""``fastinpaint train``: a config file (TOML, or YAML with PyYAML) and/or flags → :class:`Trainer`.

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
the same samples per step however many processes share it. Every flag is a config key of
:data:`fastinpaint.training.DEFAULTS`; flags override the config file. The keys of
:data:`CONFIG_ONLY` have no flag.
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from fastinpaint.cli._common import reports_user_errors, standalone_main
from fastinpaint.training.distributed import cleanup
from fastinpaint.training.run import train

_FLAGS = [  # (flag, config key, argparse kwargs)
    ("--model", "model", {"help": "a registered model: fastinpaint.training.MODELS or TRAINERS (e.g. pconv, glcic)"}),
    ("--images", "images", {"help": "training image folder (recursive, any format Pillow reads)"}),
    ("--masks", "masks", {"help": "mask folder (grey > 127 = hole; 0/1 masks must be scaled to 0/255); default: generated irregular masks"}),
    ("--val-images", "val_images", {"help": "validation image folder"}),
    ("--val-count", "val_count", {"type": int, "help": "validation images, >= 1 (default 8); no validation without --val-images"}),
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
    ("--time-limit", "time_limit", {"type": float, "help": "minutes of wall time: stop, save and export then"}),
    ("--glcic-completion-steps", "glcic_completion_steps",
     {"type": int, "help": "--model glcic: completion-only (MSE) steps (default 500)"}),
    ("--glcic-discriminator-steps", "glcic_discriminator_steps",
     {"type": int, "help": "--model glcic: discriminator-only steps after them (default 100)"}),
    ("--glcic-alpha", "glcic_alpha", {"type": float, "help": "--model glcic: adversarial weight (default 4e-4)"}),
]
#: The switches: flags without a value, each setting one config key.
_SWITCHES = ("finetune", "amp", "deterministic", "resume", "overwrite", "progress")
#: The config keys with no flag (nested tables, or rarely changed): set in the --config file.
CONFIG_ONLY = ("border", "hflip", "loss_weights", "model_options")

#: ``fastinpaint train --help``'s text (plain: argparse prints it as is).
DESCRIPTION = ("Train an inpainting network from a config file (TOML, or YAML with PyYAML)\n"
               "and/or flags; flags override the config file. Under torchrun: several\n"
               "processes (DDP), batch_size being the global batch.")
EPILOG = f"""examples:
  fastinpaint train --config train.toml
  fastinpaint train --config train.toml --steps 20000 --resume
  torchrun --standalone --nproc-per-node 4 -m fastinpaint.training --config train.toml

Config keys without a flag (set them in the --config file): {", ".join(CONFIG_ONLY)}.
See docs/training.md."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML or YAML config file; flags override its values")
    for flag, key, kw in _FLAGS:
        p.add_argument(flag, dest=key, default=None, **kw)
    # default None everywhere: a flag not given leaves the config file's value
    p.add_argument("--finetune", dest="finetune", action="store_const", const=True, default=None,
                   help="fine-tuning stage (frozen encoder BatchNorm, lr 5e-5)")
    p.add_argument("--amp", dest="amp", action="store_const", const=True, default=None,
                   help="mixed precision on CUDA")
    p.add_argument("--deterministic", dest="deterministic", action="store_const", const=True, default=None,
                   help="deterministic algorithms only")
    p.add_argument("--resume", dest="resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                   help="continue from OUT/checkpoints/last.pt (or the given checkpoint)")
    p.add_argument("--overwrite", dest="overwrite", action="store_const", const=True, default=None,
                   help="start over in an OUT that holds an earlier run (its last.pt, model.pt and log.jsonl "
                        "are removed); without it or --resume such an OUT is refused")
    p.add_argument("--no-progress", dest="progress", action="store_const", const=False, default=None,
                   help="no progress bar")


@reports_user_errors("fastinpaint train", ValueError, FileNotFoundError)
def _train(args: argparse.Namespace) -> int:
    overrides = {key: getattr(args, key) for _, key, _ in _FLAGS}
    overrides.update({key: getattr(args, key) for key in _SWITCHES})
    train(args.config, **overrides)
    return 0


def run(args: argparse.Namespace) -> int:
    """The ``train`` subcommand; leaves the ``torchrun`` process group however it ends."""
    try:
        return _train(args)
    except KeyboardInterrupt:
        return 130  # the trainer has saved a checkpoint and said where
    finally:
        cleanup()


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    """Adds ``train`` to an ``argparse`` subparsers object; the handler is ``args.func(args) -> int``.

    ``--model`` is looked up in the registries when the command runs (so models registered after
    this call are available).
    """
    p = subparsers.add_parser("train", help="train an inpainting network (config file and/or flags; torchrun for DDP)",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m fastinpaint.training ...`` (what ``torchrun -m`` runs)."""
    return standalone_main("python -m fastinpaint.training", DESCRIPTION, add_arguments, run, argv)
