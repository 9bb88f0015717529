"""``python -m fastinpaint.training`` / ``torchrun -m fastinpaint.training``: ``fastinpaint train``."""

import sys

from fastinpaint.cli.train import main

sys.exit(main())
