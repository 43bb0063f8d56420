"""Another git revision's spinfits, importable by a subprocess: benches compare against a commit.

``exported(rev, into)`` writes ``git archive REV`` under ``into`` and lays out an import root
as that revision's pyproject maps its packages (``spinfits.fitting`` -> ``fitting/`` ...), with
links; ``environment(root)`` is the environment of a ``python`` that imports it instead of this
checkout (``PYTHONPATH`` is searched first). A script run so calls ``isolate()`` first: this
checkout's editable install would still answer for modules the revision lacks (it maps
``spinfits.fitting.*`` by name), so its finder is taken off ``sys.meta_path``;
``check_imported_from`` then checks ``spinfits.__file__`` lies under the export.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]


def exported(rev: str, into: Path) -> Path:
    """``into/root``: an import root of revision ``rev`` (a commit, tag or branch of this repo)."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", rev], check=True, capture_output=True
        ).stdout
    except subprocess.CalledProcessError as error:
        raise SystemExit(f"cannot export revision {rev!r}: {error.stderr.decode().strip()}") from None
    tree = into / "tree"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    package_dir = tomllib.loads((tree / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    root = into / "root"
    for package, folder in sorted(package_dir.items()):  # parents before children
        target = root.joinpath(*package.split("."))
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(tree / folder, target_is_directory=True)
    return root


def environment(root: Path) -> dict[str, str]:
    """This process's environment with ``root`` first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    return env


def isolate() -> None:
    """Take this checkout's editable-install finder off ``sys.meta_path`` (before any import of
    spinfits): a module the revision lacks is then missing, not this checkout's."""
    sys.meta_path[:] = [
        f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")
    ]


def check_imported_from(root: Path) -> None:
    """``SystemExit`` unless ``spinfits`` was imported from ``root`` (not this checkout)."""
    import spinfits

    if not Path(spinfits.__file__).resolve().is_relative_to(root.resolve().parent):
        raise SystemExit(f"spinfits came from {spinfits.__file__}, not from the exported revision {root}")
