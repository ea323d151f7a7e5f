"""Entry point for `python -m cifar_lab`."""

import sys

from .cli import main

sys.exit(main())
