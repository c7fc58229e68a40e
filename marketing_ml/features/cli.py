"""`marketing-ml features ...`: browse the feature catalog from a terminal (no Dagster, no warehouse).

    marketing-ml features list [--group G]    every feature: group, dtype, version, description
    marketing-ml features describe NAME       one feature in full
    marketing-ml features lock                record feature versions and SQL hashes after a version bump
"""

from __future__ import annotations

import argparse
import shutil
import sys
import textwrap

from marketing_ml.features.catalog import FEATURE_TABLE, GROUPS, get_feature, load_feature_catalog


def add_features_command(subcommands: argparse._SubParsersAction) -> None:
    features = subcommands.add_parser("features", help="browse the feature catalog (list, describe NAME, lock)")
    actions = features.add_subparsers(dest="features_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list every feature")
    listing.add_argument("--group", choices=GROUPS, help="only the features of one group")
    listing.set_defaults(handler=_list)
    describe = actions.add_parser("describe", help="show one feature in full")
    describe.add_argument("name")
    describe.set_defaults(handler=_describe)
    lock = actions.add_parser("lock", help="record versions and SQL hashes (after bumping a changed feature's version)")
    lock.set_defaults(handler=_lock)


def _list(args: argparse.Namespace) -> int:
    catalog = [f for f in load_feature_catalog() if args.group in (None, f.group)]
    width = shutil.get_terminal_size((120, 20)).columns
    name_width = max(len(f.name) for f in catalog)
    print(f"{len(catalog)} features of {FEATURE_TABLE} (one row per client per as-of date)\n")
    header = f"{'name':<{name_width}}  {'group':<10}  {'dtype':<8}  ver  description"
    print(header)
    for f in catalog:
        line = f"{f.name:<{name_width}}  {f.group:<10}  {f.dtype:<8}  {f.version:>3}  {f.description}"
        print(line if len(line) <= width else line[: width - 3] + "...")
    print("\n`marketing-ml features describe NAME` shows one feature in full.")
    return 0


def _describe(args: argparse.Namespace) -> int:
    try:
        f = get_feature(args.name)
    except KeyError as error:
        print(f"error: {error.args[0]}", file=sys.stderr)
        return 2
    fields = {
        "name": f.name, "table": FEATURE_TABLE, "group": f.group, "dtype": f.dtype, "version": f.version,
        "owner": f.owner, "entity": f.entity, "sql hash": f.sql_hash or "(not locked yet)",
    }
    for key, value in fields.items():
        print(f"{key:<12}: {value}")
    print("description :")
    print(textwrap.fill(f.description, width=100, initial_indent="  ", subsequent_indent="  "))
    return 0


def _lock(args: argparse.Namespace) -> int:
    from marketing_ml.features.versions import write_lock

    problems = write_lock()
    if problems:
        print("error: not locked - the SQL of these features changed without a version bump:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print("feature_versions.lock.json updated: versions and SQL hashes of every feature recorded")
    return 0
