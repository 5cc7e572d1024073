"""MkDocs hooks: the reference pages' tables come from the code, so they cannot drift from it.

A page asks for a generated part with a comment on a line of its own:

- ``<!-- generated: options -->``: `register`'s keyword options (`fuzzgrad.registry.options`);
- ``<!-- generated: rules -->``: the verdict's named excuses (`fuzzgrad.verdict.rules`);
- ``<!-- generated: cli -->``: every command's ``--help`` (`fuzzgrad.integrations.cli`);
- ``<!-- generated: schema -->``: the fields of results.json (its JSON Schema);
- ``<!-- include: PATH -->``: a file of the repository (``reports/README.md``), headings shifted
  one level down.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK = re.compile(r"^<!-- (generated|include): (\S+) -->$", re.M)


def on_page_markdown(markdown: str, **_kwargs) -> str:
    return MARK.sub(lambda m: _expand(m.group(1), m.group(2)), markdown)


def _expand(kind: str, what: str) -> str:
    if kind == "include":
        text = (ROOT / what).read_text(encoding="utf-8")
        text = re.sub(r"^# .*\n", "", text, count=1)  # the page has its own title
        return re.sub(r"^(#+) ", r"\1# ", text, flags=re.M)
    return {"options": _options, "rules": _rules, "cli": _cli, "schema": _schema}[what]()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _options() -> str:
    from fuzzgrad.registry.options import OPTIONS

    rows = ["| option | example | what it does |", "|---|---|---|"]
    for name, (example, doc) in sorted(OPTIONS.items()):
        rows.append(f"| `{name}` | `{_cell(example)}` | {_cell(doc)} |")
    return "\n".join(rows)


def _rules() -> str:
    from fuzzgrad.verdict.rules import RULES

    rows = ["| rule | when it applies, and why |", "|---|---|"]
    for name, rule in RULES.items():
        rows.append(f"| `{name}` | {_cell(rule.doc)} |")
    return "\n".join(rows)


def _cli() -> str:
    import argparse

    from fuzzgrad.integrations.cli import _parser

    parser = _parser()
    parts = ["```text", parser.format_help().rstrip(), "```"]
    for action in parser._subparsers._group_actions:  # noqa: SLF001 - argparse has no public walk
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, sub in action.choices.items():
                parts += [f"\n### `fuzzgrad {name}`\n", "```text"]
                parts += [sub.format_help().rstrip(), "```"]
    return "\n".join(parts)


def _schema() -> str:
    schema = json.loads((ROOT / "fuzzgrad/report/results.schema.json").read_text())
    parts = [_fields("top level", schema)]
    for name, node in schema.get("$defs", {}).items():
        if node.get("properties"):
            parts.append(_fields(f"`{name}`", node))
    return "\n\n".join(parts)


def _fields(title: str, node: dict) -> str:
    required = set(node.get("required", ()))
    rows = [f"**{title}**: {_cell(node.get('description', ''))}", ""]
    rows += ["| field | type | required | notes |", "|---|---|---|---|"]
    for field, spec in node["properties"].items():
        rows.append(
            f"| `{field}` | {_type(spec)} | {'yes' if field in required else ''} | "
            f"{_cell(spec.get('description', ''))} |"
        )
    return "\n".join(rows)


def _type(spec: dict) -> str:
    if "$ref" in spec:
        return f"`{spec['$ref'].rsplit('/', 1)[-1]}`"
    if "enum" in spec:
        return " or ".join(f"`{json.dumps(v)}`" for v in spec["enum"])
    if "const" in spec:
        return f"`{json.dumps(spec['const'])}`"
    kind = spec.get("type")
    if kind == "array":
        return f"array of {_type(spec.get('items', {}))}"
    if isinstance(kind, list):
        return " or ".join(kind)
    if "anyOf" in spec or "oneOf" in spec:
        return " or ".join(_type(s) for s in spec.get("anyOf", spec.get("oneOf", [])))
    return kind or "any"
