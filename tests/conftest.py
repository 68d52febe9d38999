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
