"""Where the lab's background messages go: jobs starting, stopping and failing, the run store's recovery."""
from __future__ import annotations

import logging
import sys

LOGGER = "cifar_lab"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: int = logging.INFO) -> logging.Logger:
    """Send the lab's log records to stderr at `level`; calling it again only changes the level."""
    logger = logging.getLogger(LOGGER)
    if not any(getattr(h, "cifar_lab", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT, "%H:%M:%S"))
        handler.cifar_lab = True  # type: ignore[attr-defined]  # marks ours, so a rerun adds no second one
        logger.addHandler(handler)
    logger.setLevel(level)
    return logger
