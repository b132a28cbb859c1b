"""Reading a hand-written YAML config file strictly: what PyYAML lets through silently is refused.

- a key given twice in one mapping (PyYAML keeps the last) names both lines;
- aliases (`*name`) are refused: they are how a small file expands to gigabytes (a "billion
  laughs"), and queue.yml has `defaults:` for sharing settings;
- `.inf` and `.nan` are refused: no setting or job argument means them, and JSON cannot carry them;
- lists and mappings nested deeper than strictjson.MAX_DEPTH are refused (PyYAML composes
  nodes recursively: a 20 KB file of brackets raised RecursionError);
- a file above MAX_BYTES is refused before it is parsed.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from ..errors import ConfigError
from ..options.strictjson import MAX_DEPTH, TOO_DEEP

MAX_BYTES = 1024 * 1024


class _Refused(yaml.MarkedYAMLError):
    pass


class StrictLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0  # lists and mappings open around the node being composed

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]  # unannotated in types-PyYAML
            raise _Refused(
                problem=f"alias *{event.anchor} refused (write the value out; aliases can blow a file up)",
                problem_mark=event.start_mark,
            )
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        if self.depth == MAX_DEPTH:
            raise _Refused(problem=TOO_DEEP, problem_mark=self.peek_event().start_mark)  # type: ignore[no-untyped-call]
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in first_line:
                    raise _Refused(
                        problem=f"duplicate key {key!r} (lines {first_line[key]} and {line})",
                        problem_mark=key_node.start_mark,
                    )
                first_line[key] = line
            except TypeError:  # an unhashable key: SafeConstructor reports it below
                break
        return super().construct_mapping(node, deep)

    def construct_yaml_float(self, node: ScalarNode) -> float:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise _Refused(problem=f"{node.value!r} refused: expected a finite number", problem_mark=node.start_mark)
        return value


# SafeLoader's table holds SafeConstructor's function; mappings need no such line, because
# SafeConstructor.construct_yaml_map calls self.construct_mapping, which is the method above
StrictLoader.add_constructor("tag:yaml.org,2002:float", StrictLoader.construct_yaml_float)


def read(path: str | Path, missing: str | None) -> Any:
    """The document in `path`, or None when it does not exist and `missing` is None; when it
    does not exist and `missing` is given (what to do about it), a ConfigError saying where."""
    path = Path(path)
    if not path.exists():
        if missing is None:
            return None
        raise ConfigError(f"{path.name} not found in {path.resolve().parent} ({missing})")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(f"{path}: {size} bytes, more than a config file may hold ({MAX_BYTES} bytes)")
        return yaml.load(path.read_text(), Loader=StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        kind = "" if isinstance(exc, _Refused) else "malformed YAML at "
        raise ConfigError(f"{path}: {kind}{where}: {exc.problem}") from None
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
