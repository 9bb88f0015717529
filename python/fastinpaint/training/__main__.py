"""``python -m fastinpaint.training`` / ``torchrun -m fastinpaint.training``: ``fastinpaint train``."""

import sys

from fastinpaint.training.run import main

sys.exit(main())
