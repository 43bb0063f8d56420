"""The ``spinfits`` command: one entry point, one thin module of glue per subcommand group.

Each group module of this package (``spinfits.cli.model``, ``.data``, ``.store``, ``.init``,
``.precompute``, ``.train``) exposes ``register(subparsers)``, adding its parser(s) with a ``func``
default that takes the parsed ``argparse.Namespace`` and returns an exit status.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys

from spinfits.errors import Interrupted, SpinfitsError

#: Exit status of a run stopped by Ctrl-C (128 + SIGINT, as a shell reports it).
INTERRUPTED_STATUS = 130

#: Subcommand groups, each a module of this package with ``register(subparsers)``.
GROUPS = (
    "spinfits.cli.model",
    "spinfits.cli.data",
    "spinfits.cli.store",
    "spinfits.cli.init",
    "spinfits.cli.precompute",
    "spinfits.cli.train",
    "spinfits.cli.demo",
    "spinfits.cli.eval",
    "spinfits.cli.export",
)


def _version() -> str:
    """The installed distribution's version (pyproject.toml's)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("spinfits")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spinfits",
        description="SPIN's fits dictionary at cluster scale.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in GROUPS:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # icechunk warns on every local open that its filesystem storage is unsafe for
        # concurrent commits; spinfits serialises local commits with a lock, so hide that.
        import icechunk

        icechunk.set_logs_filter("error")
    try:
        return int(args.func(args) or 0)
    except Interrupted as error:
        print(f"spinfits {args.command}: interrupted: {error}", file=sys.stderr)
        return INTERRUPTED_STATUS
    except KeyboardInterrupt:
        print(
            f"spinfits {args.command}: interrupted (Ctrl-C); what was committed before stays in the "
            "store: rerun the same command to continue",
            file=sys.stderr,
        )
        return INTERRUPTED_STATUS
    except SpinfitsError as error:
        print(f"spinfits {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`spinfits store log S | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:
        if error.errno != errno.ENAMETOOLONG:
            raise
        print(
            f"spinfits {args.command}: error: a path is too long for the file system ({error.strerror}: "
            f"{error.filename!r}); each part of a path may hold at most 255 bytes: choose a shorter name",
            file=sys.stderr,
        )
        return 2
    except Exception as error:
        import icechunk

        if not isinstance(error, icechunk.IcechunkError):
            raise
        # A storage failure no reader turned into a spinfits error: one line, never a traceback.
        from spinfits.store.damage import icechunk_reason, repair_advice

        where = getattr(args, "store", None) or "STORE"
        print(
            f"spinfits {args.command}: error: the store's files cannot be read: {icechunk_reason(error)}. "
            f"They are damaged or missing, or the storage failed. {repair_advice(where)}",
            file=sys.stderr,
        )
        return 2
