"""What every stage script shares: logging set-up and turning bad input into a clear message and exit code 2."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from vbert.core.errors import InputError

log = logging.getLogger("vbert")


def setup_logging() -> None:
    """`logging` at VBERT_LOG_LEVEL (INFO)."""
    logging.basicConfig(
        level=os.environ.get("VBERT_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def stage(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap a stage's entry point: log set-up, and InputError -> one 'NAME: ...' line per problem on stderr, exit 2."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            setup_logging()
            try:
                return func(*args, **kwargs)
            except InputError as err:
                for line in str(err).splitlines() or [type(err).__name__]:
                    log.error("%s: %s", name, line)
                sys.exit(2)

        return wrapper

    return decorate
