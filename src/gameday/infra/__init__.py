"""The reference deployment, shipped as package data: CloudFormation templates (``*.yaml``)
and the reference Lambda handlers (``functions/``)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def templates_dir() -> Path:
    """The folder of the reference templates (an installed wheel unpacks package data to disk)."""
    return Path(str(files(__name__)))


def functions_dir() -> Path:
    """The folder of the reference Lambda handlers (put_item.py, get_item.py, health.py)."""
    return templates_dir() / "functions"
