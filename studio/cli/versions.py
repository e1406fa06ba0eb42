"""`slipway versions` and `slipway alias`: the Versions stage without a screen.

    slipway versions [NAME] [--tag T] [--alias A] [--search TEXT] [--at TIME] [--json]
                                                the registered versions (and NAME's alias moves)
    slipway versions NAME:N [--json]            one version: its facts, reports and lineage
    slipway versions NAME:N --set-tag K=V --remove-tag K --note TEXT
    slipway versions --delete NAME:N [--force]  refused while an alias names it, unless forced
    slipway versions --export NAME:N -o FILE    its file (or folder), checked against its sha256
    slipway alias NAME@ALIAS VERSION            point the alias at a version
    slipway alias NAME@ALIAS --rollback         move it back where it was before its last move
    slipway alias NAME@ALIAS --remove
    slipway alias NAME@ALIAS                    where it points, and its moves

`--at 2026-11-24T10:00` (local time) shows the versions as they were then, with the aliases as they
pointed then: what was serving on Tuesday.
"""

from __future__ import annotations

import argparse
import json

from studio.core.errors import ExitStatus
from studio.core.units import human_size, printable, text_table

COMMANDS = ("versions", "alias")


def add_commands(commands: argparse._SubParsersAction) -> None:
    versions = commands.add_parser("versions", help="the model registry: versions, lineage, "
                                                    "aliases")
    versions.add_argument("model", nargs="?", metavar="NAME | NAME:N",
                          help="one model's versions, or one version in full")
    versions.add_argument("--tag", metavar="KEY[=VALUE]", help="only versions with this tag")
    versions.add_argument("--alias", metavar="ALIAS", help="only the versions this alias names")
    versions.add_argument("--search", metavar="TEXT",
                          help="only versions whose name, alias, tag or format contains TEXT")
    versions.add_argument("--at", metavar="TIME",
                          help="as it was at TIME (2026-11-24T10:00, local time): the versions "
                               "that existed and where the aliases pointed")
    versions.add_argument("--json", action="store_true", help="print JSON")
    versions.add_argument("--set-tag", action="append", default=[], metavar="KEY=VALUE",
                          help="tag NAME:N (repeatable; KEY alone for a tag without a value)")
    versions.add_argument("--remove-tag", action="append", default=[], metavar="KEY",
                          help="remove a tag from NAME:N (repeatable)")
    versions.add_argument("--note", metavar="TEXT", help="set NAME:N's notes")
    actions = versions.add_mutually_exclusive_group()
    actions.add_argument("--delete", metavar="NAME:N", help="delete a version and its file")
    actions.add_argument("--export", metavar="NAME:N", help="write a version's file to -o FILE")
    versions.add_argument("--force", action="store_true",
                          help="with --delete: delete even while aliases name it (they go too)")
    versions.add_argument("-o", "--output", metavar="FILE", help="with --export: where to write")
    versions.set_defaults(run=run_versions)

    alias = commands.add_parser("alias", help="point, roll back or remove a model's alias")
    alias.add_argument("target", metavar="NAME@ALIAS", help="e.g. churn@champion")
    alias.add_argument("version", nargs="?", type=int, metavar="VERSION",
                       help="the version to point it at")
    moves = alias.add_mutually_exclusive_group()
    moves.add_argument("--rollback", action="store_true",
                       help="move it back where it pointed before its last move")
    moves.add_argument("--remove", action="store_true", help="remove the alias")
    alias.add_argument("--json", action="store_true", help="print JSON")
    alias.set_defaults(run=run_alias)


def _usage(message: str) -> int:
    import sys

    print(f"slipway: error: {message}", file=sys.stderr)
    return ExitStatus.USAGE


def _version_table(versions) -> list[str]:
    from studio.core.versions.version import when_text

    rows = [["MODEL", "VERSION", "ALIASES", "FORMAT", "SIZE", "CREATED", "PARITY", "FROM"]]
    rows += [[v.name, str(v.version), ",".join(v.aliases) or "-", v.format, human_size(v.size),
              when_text(v.created), v.parity_verdict, v.origin] for v in versions]
    return [printable(line) for line in text_table(rows, indent="")]


def _move_lines(moves) -> list[str]:
    from studio.core.versions.version import when_text

    return [printable(f"  {when_text(m.at)}  {m.user}  {m.text()}") for m in moves]


def run_versions(args: argparse.Namespace) -> int:
    from studio.core.versions.references import is_reference, version_of
    from studio.core.versions.registry import Registry, parse_time

    registry = Registry()
    if args.delete:
        return _delete(registry, version_of(args.delete, registry), args.force)
    if args.export:
        if not args.output:
            return _usage("--export needs -o FILE: where to write the version's file")
        written = registry.export(version_of(args.export, registry), args.output)
        print(f"Wrote {args.export} to {written}.")
        return ExitStatus.OK
    changes = args.set_tag or args.remove_tag or args.note is not None
    if args.model and is_reference(args.model):
        version = version_of(args.model, registry)
        if changes:
            version = _change(registry, version, args)
        return _show(registry, version, args.json)
    if changes:
        return _usage("--set-tag, --remove-tag and --note need one version: NAME:N")
    at = parse_time(args.at) if args.at else None
    found = registry.versions(args.model, tag=args.tag, alias=args.alias, search=args.search,
                              at=at)
    if args.model and not found:
        registry.check_name(args.model)
    moves = registry.alias_history(args.model) if args.model else []
    if at is not None:
        moves = [m for m in moves if m.at <= at]
    if args.json:
        print(json.dumps({"versions": [v.to_json(schema=False) for v in found],
                          "alias_moves": [m.to_json() for m in moves]}, indent=2))
        return ExitStatus.OK
    if args.at:
        from studio.core.versions.version import when_text

        print(f"As at {when_text(at)} (local time):")
    if not found:
        filtered = args.tag or args.alias or args.search or args.at
        print("No version matches." if filtered else
              "No versions yet: `slipway inspect MODEL` records one (so do convert and optimize, "
              "and opening a model in the app).")
        return ExitStatus.OK
    print("\n".join(_version_table(found)))
    if moves:
        print(f"\nAlias moves of {printable(args.model)} (newest first)")
        print("\n".join(_move_lines(moves)))
    return ExitStatus.OK


def _change(registry, version, args: argparse.Namespace):
    for pair in args.set_tag:
        key, _, value = pair.partition("=")
        version = registry.set_tag(version, key, value)
    for key in args.remove_tag:
        version = registry.remove_tag(version, key)
    if args.note is not None:
        version = registry.set_notes(version, args.note)
    return version


def _show(registry, version, as_json: bool) -> int:
    lineage = registry.lineage(version)
    moves = [m for m in registry.alias_history(version.name)
             if version.version in (m.from_version, m.to_version)]
    if as_json:
        print(json.dumps({**version.to_json(),
                          "lineage": {"ancestors": [getattr(a, "reference", a)
                                                    for a in lineage.ancestors],
                                      "descendants": [{"depth": depth, "reference": v.reference}
                                                      for depth, v in lineage.descendants]},
                          "alias_moves": [m.to_json() for m in moves]}, indent=2))
        return ExitStatus.OK
    aliases = f"  aliases: {', '.join(version.aliases)}" if version.aliases else ""
    lines = [f"{version.reference}  ({version.format}, {human_size(version.size)}){aliases}"]
    lines += [f"  {label:<9} {text}" for label, text in version.facts()]
    lines += ["", "Lineage"]
    lines += [f"  {getattr(a, 'reference', a)}  {getattr(a, 'origin', 'deleted')}"
              for a in lineage.ancestors]
    lines.append(f"> {version.reference}  {version.origin}")
    lines += [f"  {'  ' * depth}{v.reference}  {v.origin}" for depth, v in lineage.descendants]
    if moves:
        lines += ["", "Alias moves"] + _move_lines(moves)
    print("\n".join(printable(line) for line in lines))
    return ExitStatus.OK


def _delete(registry, version, force: bool) -> int:
    removed = registry.delete(version, force=force)
    for move in removed:
        print(f"Removed {move.name}@{move.alias} (it named {version.reference}).")
    print(f"Deleted {version.reference}.")
    return ExitStatus.OK


def _alias_target(text: str) -> tuple[str, str]:
    from studio.core.versions.references import parse
    from studio.core.versions.registry import VersionError

    name, _, alias = parse(text)
    if alias is None:
        raise VersionError(f"'{text}' names a version, not an alias.",
                           f"Write NAME@ALIAS, for example {name}@champion.")
    return name, alias


def run_alias(args: argparse.Namespace) -> int:
    from studio.core.versions.registry import Registry

    name, alias = _alias_target(args.target)
    registry = Registry()
    if args.version is not None and (args.rollback or args.remove):
        return _usage("give a VERSION or --rollback or --remove, not both")
    if args.rollback:
        move = registry.rollback(name, alias)
    elif args.remove:
        move = registry.remove_alias(name, alias)
    elif args.version is not None:
        move = registry.set_alias(name, alias, args.version)
    else:
        current = registry.by_alias(name, alias)
        moves = registry.alias_history(name, alias)
        if args.json:
            print(json.dumps({"reference": current.reference,
                              "alias_moves": [m.to_json() for m in moves]}, indent=2))
        else:
            print(printable(f"{name}@{alias} is {current.reference} ({current.origin})"))
            print("\n".join(_move_lines(moves)))
        return ExitStatus.OK
    print(json.dumps(move.to_json(), indent=2) if args.json else printable(move.text()))
    return ExitStatus.OK
