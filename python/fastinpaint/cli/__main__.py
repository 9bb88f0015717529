"""``python -m fastinpaint.cli ...`` (e.g. under ``torchrun -m fastinpaint.cli inpaint --images ...``)."""

import sys

from fastinpaint.cli import main

sys.exit(main())
