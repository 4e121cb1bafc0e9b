"""Read YAML keeping the line of every key, so that a load error can point at it.

PyYAML composes the node tree (each node carries its start mark); we build the plain
data from it ourselves and record ``lines[("fields", "Email", "format")] = 41``. The
policy loader and the configuration loader (``service.config_read``) both read this way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

Key = tuple[str | int, ...]
#: the message of a key given twice in one mapping (the first one counts)
DUPLICATE_KEY: Final = "duplicate key"


@dataclass
class MarkedDoc:
    """A parsed document: the data, the 1-based line of each key path, and parse errors."""

    data: Any
    lines: dict[Key, int] = field(default_factory=dict)
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (line, key, message)

    def line(self, key: Key) -> int:
        """The line of ``key``, else of its nearest ancestor that has one."""
        probe = tuple(key)
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = probe[:-1]
        return self.lines.get((), 1)


def dotted(key: Key) -> str:
    """``("fields", "MetaData", "items", 0)`` -> ``fields.MetaData.items[0]``."""
    out = ""
    for part in key:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def load_marked(text: str) -> MarkedDoc:
    """Parse one YAML document; a syntax error becomes an error entry, never an exception."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        doc = MarkedDoc(data=None)
        doc.errors.append((line, "", f"YAML syntax error: {exc.problem or exc}"))
        return doc
    except yaml.YAMLError as exc:
        doc = MarkedDoc(data=None)
        doc.errors.append((1, "", f"YAML error: {exc}"))
        return doc
    doc = MarkedDoc(data=None)
    if node is None:
        return doc
    doc.lines[()] = node.start_mark.line + 1
    doc.data = _build(node, (), doc, SafeConstructor())
    return doc


def _build(node: yaml.Node, key: Key, doc: MarkedDoc, ctor: SafeConstructor) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            kline = knode.start_mark.line + 1
            name = _scalar(knode, ctor)
            if not isinstance(name, str):
                doc.errors.append((kline, dotted(key), f"keys must be strings, got {name!r}"))
                continue
            child = (*key, name)
            if name in out:
                doc.errors.append((kline, dotted(child), DUPLICATE_KEY))
                continue
            doc.lines[child] = kline
            out[name] = _build(vnode, child, doc, ctor)
        return out
    if isinstance(node, yaml.SequenceNode):
        items: list[Any] = []
        for i, inode in enumerate(node.value):
            child = (*key, i)
            doc.lines[child] = inode.start_mark.line + 1
            items.append(_build(inode, child, doc, ctor))
        return items
    return _scalar(node, ctor)


def _scalar(node: yaml.Node, ctor: SafeConstructor) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return f"<{type(node).__name__}>"
    try:
        return ctor.construct_object(node, deep=True)
    except ConstructorError:
        return node.value
