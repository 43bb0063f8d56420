"""``spinfits store verify`` and ``spinfits store upgrade``: find damage, add checksums.

``verify STORE [--version V | --all-versions]`` reads every chunk of the version(s), checks
checksums, manifests and the rows' plausibility, prints one line per damaged place (version,
dataset, array, rows, problem) and exits 2 with the repair when anything is damaged.
``upgrade STORE`` rewrites the arrays a store holds without checksums with them, in one commit.
"""

from __future__ import annotations

import argparse

from spinfits.cli.options import add_s3_arguments, open_store, table


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``verify`` and ``upgrade`` to the ``spinfits store`` subcommands."""
    p = commands.add_parser(
        "verify",
        help="read every chunk, check checksums and rows; exit 2 if anything is damaged",
        description="Read every chunk of a version (default: the tip of main) or of every kept "
        "version, check checksums, manifests and the plausibility of the rows, and list what is "
        "damaged with how to repair it.",
    )
    p.add_argument("store", metavar="STORE", help="store directory or s3://bucket/prefix")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--version", help="branch, tag or snapshot id (default: tip of main)")
    which.add_argument("--all-versions", action="store_true", help="every commit of main and every tag")
    add_s3_arguments(p)
    p.set_defaults(func=cmd_verify)

    p = commands.add_parser(
        "upgrade",
        help="give a store written before checksums a checksum on every chunk (one new commit)",
    )
    p.add_argument("store", metavar="STORE", help="store directory or s3://bucket/prefix")
    add_s3_arguments(p)
    p.set_defaults(func=cmd_upgrade)


def cmd_verify(args: argparse.Namespace) -> int:
    from spinfits.store.damage import DamagedStoreError
    from spinfits.store.verify import verify_store

    store = open_store(args)
    checks = verify_store(store, args.version, all_versions=args.all_versions)
    rows = [
        [check.snapshot_id, d.dataset, d.array, d.rows, d.problem] for check in checks for d in check.damage
    ]
    whole = [check.snapshot_id for check in checks if check.whole]
    print(f"verified {len(checks)} version(s) of {store.location}: {len(whole)} whole")
    unchecked = checks[0].unchecked
    if unchecked:
        print(
            f"note: {len(unchecked)} arrays carry no checksums (written before checksums: "
            f"{', '.join(unchecked[:4])}{', ...' if len(unchecked) > 4 else ''}); damage in them shows "
            f"only where it makes a row implausible. Add checksums with `spinfits store upgrade {args.store}`"
        )
    if not rows:
        print("no damage found")
        return 0
    print()
    print(table(rows, ["version", "dataset", "array", "rows", "problem"]))
    print()
    if args.all_versions:
        print(f"newest whole version: {whole[0] if whole else 'none'}")
    damage = [d for check in checks for d in check.damage]
    # a refit repairs the tip (the rows it names); older versions are repaired by rolling back
    raise DamagedStoreError(damage, str(store.location), refit_repairs=not checks[0].unrepairable)


def cmd_upgrade(args: argparse.Namespace) -> int:
    from spinfits.store.upgrade import upgrade

    store = open_store(args)
    snapshot, rewritten = upgrade(store.repository, store.location, store.branch)
    if snapshot is None:
        print(f"{store.location}: every array already carries checksums; nothing to do")
        return 0
    print(f"rewrote {len(rewritten)} arrays of {store.location} with checksums, committed {snapshot}")
    return 0
