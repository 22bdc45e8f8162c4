"""Stack files read with YAML 1.2 core-schema semantics, as the Pulumi CLI reads them.

PyYAML implements YAML 1.1, where `off`, `no`, `on`, `yes`, `y` and `n` are booleans, `012` is octal,
`1:20` is sexagesimal and `2026-04-01` a date. The Pulumi CLI hands the program the strings `off`, `no`
and so on, so the CLI must read them the same way, or `dryRunOnly: off` would mean "trade live" in
`python -m release plan` and be refused by `pulumi preview`.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

# YAML 1.2.2, 10.3.2 (core schema tag resolution).
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")


class CoreSchemaLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` with the YAML 1.2 core schema's implicit types instead of YAML 1.1's."""

    yaml_implicit_resolvers: dict[Any, Any] = {}

    def construct_core_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        try:
            if text.startswith("0o"):
                return int(text[2:], 8)
            if text.startswith("0x"):
                return int(text[2:], 16)
            return int(text, 10)  # 012 is twelve in YAML 1.2, not ten
        except ValueError:
            # Python refuses to convert thousands of digits; no stack field is such a number.
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(text)} digits is too long to read", node.start_mark
            ) from None


CoreSchemaLoader.add_implicit_resolver("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""])
CoreSchemaLoader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
CoreSchemaLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
CoreSchemaLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
# Merge keys are not core schema, but the Pulumi CLI's YAML reader honours them, so they resolve here;
# stack files still cannot use them: `check_yaml_shape` (release/local_files.py) refuses the aliases they need.
CoreSchemaLoader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])
CoreSchemaLoader.add_constructor("tag:yaml.org,2002:int", CoreSchemaLoader.construct_core_int)


def load_core(text: str) -> object:
    """One YAML document read with core-schema semantics."""
    return yaml.load(text, Loader=CoreSchemaLoader)  # noqa: S506 - a SafeLoader subclass


def compose_core(text: str) -> "yaml.Node | None":
    return yaml.compose(text, Loader=CoreSchemaLoader)
