"""``python -m curvlib`` → :mod:`curvlib.cli`."""
import sys

from .cli import main

sys.exit(main())
