"""The record of processing (:mod:`policies.record`) as Markdown (for people: a page per
system) and as CSV (for a spreadsheet: one row per data category of each system).

Texts come from policy files: in Markdown a cell never breaks the table (``|`` escaped,
line breaks folded) and never becomes markup (``<``, ``>`` as entities); in CSV a cell
never starts a spreadsheet formula (a leading ``=``, ``+``, ``-``, ``@`` is quoted).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any, Final

from common.vocabulary import Role

CSV_COLUMNS: Final = (
    "system", "policy_version", "activity", "controller", "processor", "data_subjects",
    "category", "category_name", "sensitivity", "fields", "purposes", "editable_by",
    "in_clear_for", "masking", "raised_by_rules", "audit_log_retention_days",
    "upstream_retention", "recipients", "transfers",
)  # fmt: skip
_NOT_STATED: Final = "not stated"
_FORMULA: Final = ("=", "+", "-", "@", "\t", "\r")


def _md(value: Any) -> str:
    text = _NOT_STATED if value is None else str(value)
    text = " ".join(text.split())
    return (
        text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    )


def _party(party: Mapping[str, Any] | None) -> str | None:
    if party is None:
        return None
    return ", ".join(str(party[k]) for k in ("name", "address", "contact") if party.get(k))


def _processor(processor: Mapping[str, Any] | None) -> str | None:
    if processor is None:
        return None
    text = f"{processor['name']} ({processor['country']})"
    return f"{text}, {processor['contract']}" if processor.get("contract") else text


def _recipients(items: Iterable[Mapping[str, Any]]) -> str:
    parts = [
        f"{r['name']} ({r['kind']}{', ' + r['country'] if r.get('country') else ''})"
        for r in items
    ]
    return "; ".join(parts) or "none"


def _transfers(items: Iterable[Mapping[str, Any]]) -> str:
    parts = [
        f"{t['country']}: {t['recipient']} ({t['safeguard']}"
        f"{'; ' + t['note'] if t.get('note') else ''})"
        for t in items
    ]
    return "; ".join(parts) or "none"


def _retention(days: Mapping[str, Any] | None) -> str | None:
    if days is None:
        return None
    parts = [f"{days['default']} days by default"]
    parts += [f"{cat}: {n} days" for cat, n in sorted(days["categories"].items())]
    return "; ".join(parts)


def _masking(masking: Mapping[str, str]) -> str:
    return ", ".join(f"{role}: {masking[role]}" for role in Role if role in masking)


def to_markdown(record: Mapping[str, Any]) -> str:
    out = [f"# {record['title']}", ""]
    versions = ", ".join(
        f"{p['system']} `{p['version'][:12]}` ({p['file']})" for p in record["policies"]
    )
    out += [f"Generated from the policies in force: {versions}.", ""]
    for act in record["activities"]:
        out += _activity_md(act)
    return "\n".join(out).rstrip() + "\n"


def _activity_md(act: Mapping[str, Any]) -> list[str]:
    storage = act["storage"]
    out = [f"## {_md(act['system'])}: {_md(act['activity'] or act['title'])}", ""]
    out += [f"Policy version: `{act['policy_version']}`", ""]
    if act["gaps"]:
        out += [f"**Not stated in the policy:** {_md(', '.join(act['gaps']))}", ""]
    out += ["| | |", "|---|---|"]
    facts = [
        ("Controller", _party(act["controller"])),
        ("Representative", _party(act["representative"])),
        ("Data protection officer", _party(act["dpo"])),
        ("Processor", _processor(act["processor"])),
        ("Data subjects", "; ".join(act["data_subjects"]) or None),
        ("Recipients", _recipients(act["recipients"]) if act["stated"] else None),
        ("Transfers to third countries", _transfers(act["transfers"]) if act["stated"] else None),
        ("Kept in the upstream", f"{storage['upstream']['where']}: "
                                 f"{storage['upstream']['retention'] or _NOT_STATED}"),
        ("Kept in the audit log", _retention(storage["audit_log"]["retention_days"])),
    ]  # fmt: skip
    out += [f"| {name} | {_md(value)} |" for name, value in facts]
    out += ["", "### Purposes", "", "| purpose | what for | data categories |", "|---|---|---|"]
    out += [
        f"| {_md(p['purpose'])} | {_md(p['description'])} | {_md(', '.join(p['categories']))} |"
        for p in act["purposes"]
    ]
    out += ["", "### Personal data", ""]
    out += ["| category | fields | sensitivity | changed for | by | in clear for | masking "
            "| audit log retention (days) |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in act["data"]:
        sensitivity = row["sensitivity"] + "".join(
            f"; {r['sensitivity']} while {r['rule']} holds" for r in row["raised"]
        )
        cells = [
            f"{row['category']} ({row['category_name']})", ", ".join(row["fields"]),
            sensitivity, ", ".join(row["purposes"]) or "-", ", ".join(row["editable_by"]) or "-",
            ", ".join(row["in_clear_for"]) or "-", _masking(row["masking"]),
            row["audit_log"]["retention_days"],
        ]  # fmt: skip
        out.append("| " + " | ".join(_md(c) for c in cells) + " |")
    if act["rules"]:
        out += ["", "### Record-state rules", ""]
        out += [f"- {_md(r['name'])}: {_md(r['effect'])}" for r in act["rules"]]
    out += ["", "### Security measures", ""]
    out += [f"- {_md(m)}" for m in act["security"]]
    out.append("")
    return out


def _csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def to_csv(record: Mapping[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for act in record["activities"]:
        common = {
            "system": act["system"],
            "policy_version": act["policy_version"],
            "activity": act["activity"],
            "controller": _party(act["controller"]),
            "processor": _processor(act["processor"]),
            "data_subjects": "; ".join(act["data_subjects"]),
            "upstream_retention": act["storage"]["upstream"]["retention"],
            "recipients": _recipients(act["recipients"]),
            "transfers": _transfers(act["transfers"]),
        }
        for row in act["data"]:
            values = common | {
                "category": row["category"],
                "category_name": row["category_name"],
                "sensitivity": row["sensitivity"],
                "fields": "; ".join(row["fields"]),
                "purposes": "; ".join(row["purposes"]),
                "editable_by": "; ".join(row["editable_by"]),
                "in_clear_for": "; ".join(row["in_clear_for"]),
                "masking": _masking(row["masking"]),
                "raised_by_rules": "; ".join(
                    f"{r['rule']}: {r['sensitivity']}" for r in row["raised"]
                ),
                "audit_log_retention_days": row["audit_log"]["retention_days"],
            }
            writer.writerow([_csv_cell(values[c]) for c in CSV_COLUMNS])
    return buffer.getvalue()
