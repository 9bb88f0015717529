"""``python -m fastinpaint ...``: the ``fastinpaint`` command (also ``torchrun -m fastinpaint inpaint ...``)."""

import sys

from fastinpaint.cli import main

sys.exit(main())
