"""Shared pytest configuration: the --rewrite flag for golden files."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rewrite", action="store_true", help="rewrite datadriven golden files with actual output"
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--rewrite"):
        os.environ["DATADRIVEN_REWRITE"] = "1"


# `make test` (and so CI) runs hypothesis derandomized: the same examples every run, so a
# green CI stays green; run pytest directly for fresh random examples while developing.
try:
    from hypothesis import settings as _hyp_settings

    _hyp_settings.register_profile("ci", derandomize=True, print_blob=True)
    _hyp_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass
