"""``gdpr-gateway policy check [PATH... | --config FILE]``, ``policy show SYSTEM`` and
``policy record [--format markdown|json|csv]``.

Without paths, the policies in force: with ``--config``, the deployment's
``policies_dir`` (read as ``serve`` reads the configuration), else each system's
policy file of the registry (the shipped catalog)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from common.vocabulary import Role
from policies import PolicyLoadError, PolicySet, load_policy_set
from policies.loader import load_file, policy_files
from policies.record import build_record
from policies.record_render import to_csv, to_markdown
from service.config import load_policies_dir
from service.registry import SYSTEMS
from service.reload import source_dir

#: the column heading of each role's masking (the role names, one shortened)
ROLE_ABBREV = {Role.EDITOR: "editor", Role.AUDITOR: "auditor", Role.PRIVACY_OFFICER: "privacy",
               Role.ADMIN: "admin"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "policy", help="check policy files, show a system's effective field table"
    )
    actions = parser.add_subparsers(dest="policy_action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check", help="validate policy files; errors name file, line and key; exit 1 on any"
    )
    check.add_argument(
        "paths", nargs="*", type=Path, metavar="PATH",
        help="policy files or directories of *.yaml (default: the policies in force)",
    )
    _add_config(check)
    check.set_defaults(handler=run_check)
    show = actions.add_parser("show", help="the effective field table of one system")
    show.add_argument("system", help="timelog, billbee, sedona, keycom, ...")
    show.add_argument(
        "--policies", nargs="+", type=Path, metavar="PATH",
        help="load these policy files or directories instead of the shipped catalog",
    )
    _add_config(show)
    show.add_argument("--json", action="store_true", help="the rows as JSON")
    show.set_defaults(handler=run_show)
    record = actions.add_parser(
        "record", help="the record of processing activities (GDPR Art. 30) of the policies"
    )
    record.add_argument(
        "--format", choices=("markdown", "json", "csv"), default="markdown",
        help="Markdown for people (default), JSON as GET /v1/record-of-processing, CSV",
    )
    record.add_argument(
        "--policies", nargs="+", type=Path, metavar="PATH",
        help="load these policy files or directories instead of the policies in force",
    )
    _add_config(record)
    record.add_argument("--output", type=Path, metavar="FILE", help="write here, not stdout")
    record.set_defaults(handler=run_record)


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, metavar="FILE",
        help="a deployment's YAML config (and GDPR_GATEWAY_* variables): its policies_dir",
    )


def in_force(paths: list[Path] | None, config: Path | None) -> list[Path]:
    """The files named, else the configuration's policy folder, else the registry's."""
    if paths:
        if config is not None:
            print("error: give policy paths or --config, not both", file=sys.stderr)
            raise SystemExit(2)
        return policy_files(paths)
    directory = load_policies_dir(config, os.environ) if config is not None else None
    if directory is not None:
        return policy_files([source_dir(directory)])
    return sorted(SYSTEMS.policy_files(), key=lambda path: path.name)


def run_check(args: argparse.Namespace) -> int:
    files = in_force(args.paths, args.config)
    if not files:
        print("error: no policy files found", file=sys.stderr)
        return 1
    failed = False
    seen: dict[str, str] = {}
    for path in files:
        policy, errors = load_file(path)
        if policy is not None and policy.system in seen:
            errors = [f"{path.name}:1 system: {policy.system!r} is already defined in "
                      f"{seen[policy.system]}"]
        if errors:
            failed = True
            for line in errors:
                print(line, file=sys.stderr)
            continue
        assert policy is not None  # load_file gives a policy or errors
        seen[policy.system] = path.name
        fields = sum(1 for _ in policy.walk())
        print(f"OK {path.name}: system {policy.system}, mode {policy.mode}, {fields} fields, "
              f"version {policy.version[:12]}")
    return 1 if failed else 0


def _load_or_report(args: argparse.Namespace) -> PolicySet | None:
    """The policies in force, or ``None`` once every load error is on stderr."""
    try:
        return load_policy_set(in_force(args.policies, args.config))
    except PolicyLoadError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return None


def run_show(args: argparse.Namespace) -> int:
    policies = _load_or_report(args)
    if policies is None:
        return 1
    if args.system not in policies:
        known = ", ".join(policies.systems)
        print(f"error: unknown system {args.system!r} (known: {known})", file=sys.stderr)
        return 1
    policy = policies[args.system]
    rows = policy.field_table()
    if args.json:
        print(json.dumps({"system": policy.system, "mode": policy.mode,
                          "id_field": policy.id_field, "version": policy.version,
                          "fields": rows}, indent=2))
        return 0
    print(f"{policy.title} — system {policy.system}, mode {policy.mode}, "
          f"id {policy.id_field}, version {policy.version[:12]}")
    for rule in policy.deny_rules:
        print(f"rule {rule.name}: denies every change with {rule.problem}")
    for esc in policy.escalate_rules:
        raised = ", ".join(f"{a}->{b}" for a, b in esc.escalate.items())
        print(f"rule {esc.name}: raises {raised}; then only {', '.join(sorted(esc.edit_roles))} "
              f"may change those fields (else {esc.problem})")
    print()
    print(render_table(rows))
    return 0


def run_record(args: argparse.Namespace) -> int:
    """The record of processing, generated from the policies (``policies.record``)."""
    policies = _load_or_report(args)
    if policies is None:
        return 1
    record = build_record(policies)
    if args.format == "json":
        text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    else:
        text = to_csv(record) if args.format == "csv" else to_markdown(record)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write {args.output} ({exc.strerror})", file=sys.stderr)
        return 2
    return 0


def _constraints(row: dict[str, Any]) -> str:
    parts = []
    c = row["constraints"]
    for key, label in (("min_length", "min"), ("max_length", "max"), ("min_items", "min items"),
                       ("max_items", "max items"), ("format", "format")):
        if key in c:
            parts.append(f"{label} {c[key]}")
    if "enum" in c:
        parts.append("one of " + "|".join(str(v) for v in c["enum"]))
    if "pattern" in c:
        parts.append(f"pattern {c['pattern']}")
    flags = [f for f in ("read_only", "required") if row[f]]
    return ", ".join(flags + parts) or "-"


def render_table(rows: list[dict[str, Any]]) -> str:
    header = ["field", "type", "constraints", "category", "sensitivity", "editable by",
              "purposes", *(f"mask:{ROLE_ABBREV[r]}" for r in Role)]
    table = [header]
    for row in rows:
        sens = row["sensitivity"] + ("*" if row["raised_by_rules"] else "")
        table.append([
            row["path"], row["type"], _constraints(row), row["category"] or "-", sens,
            ",".join(row["editable_by"]) or "nobody", ",".join(row["purposes"]) or "-",
            *(row["masking"][r] for r in Role),
        ])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append("* raised by a record-state rule when it holds (see the rules above)")
    return "\n".join(lines)
