"""Log lines of the long-running processes (workers, supervisor): plain, readable, one per event."""

import logging
import sys

LOGGER_NAME = "jobctl"


def setup(verbose: bool = False) -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    return logger


def get() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)
