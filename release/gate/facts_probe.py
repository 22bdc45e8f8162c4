"""The probe: run inside an isolated child process over the pinned sources, it asks a platform's own
registry which profiles it can run and what each needs, and prints one JSON document.

It is run as a script file (`python -I [-S] facts_probe.py ...`), never imported by the release package,
and imports nothing of ours: only the standard library, then the platform's `strategy_registry` from the
trees named on its command line, put first on `sys.path` the way the platforms' own status script does.
Its output is data for the parent, which validates it (release/gate/facts_runner.py); nothing here
decides whether a profile may run.

What it asks, by public names only:
- `strategy_registry.get_platform_profile_status_matrix()`: the profiles the platform commit shows, with
  display name, domain, eligible and enabled;
- `strategy_registry.STRATEGY_CATALOG`: its `profile_aliases`, and per profile the definition's
  `required_inputs` and `bundled_config_relpath`;
- `strategy_registry.describe_platform_runtime_requirements(profile, platform_id=...)` where the registry
  has it (later releases), else the runtime adapter from `strategy_registry.get_platform_runtime_adapter`
  (the seed's releases): `require_snapshot_manifest`, `snapshot_contract_version`.

Exit codes: 0 with the document on the original stdout; 3 when importing the registry needs a module the
trees do not provide (the document names it, so the parent can build the environment from the lock);
anything else is a failure the parent reports with the tail of stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Optional

PROBE_VERSION = 1
MISSING_MODULE_EXIT = 3
DESCRIBE_KEYS = (
    "input_mode",
    "profile_group",
    "requires_snapshot_artifacts",
    "requires_snapshot_manifest_path",
    "requires_strategy_config_path",
    "snapshot_contract_version",
    "config_source_policy",
    "reconciliation_output_policy",
)
ERROR_CHARS = 300


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:ERROR_CHARS]


def _plain(value: Any) -> Any:
    """A JSON-able copy of a value the registry returned (sets sorted, unknown objects as text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (set, frozenset)):
        return sorted(str(item) for item in value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value)


def _provided(name: str, roots: list[Path]) -> bool:
    top = name.split(".")[0]
    return any((root / top).is_dir() or (root / f"{top}.py").is_file() for root in roots)


def _bundled_present(relpath: Optional[str], platform_root: Path) -> Optional[bool]:
    if not relpath:
        return None
    if relpath.startswith("package://"):
        package, _, resource = relpath.removeprefix("package://").partition("/")
        try:
            module = __import__(package)
        except Exception:  # noqa: BLE001 - a package that does not import has no bundled file to offer
            return False
        location = getattr(module, "__file__", None)
        return isinstance(location, str) and bool(resource) and (Path(location).parent / resource).is_file()
    candidate = (platform_root / relpath).resolve()
    return candidate.is_relative_to(platform_root.resolve()) and candidate.is_file()


def _profile(registry: Any, row: dict[str, Any], platform: str, platform_root: Path) -> dict[str, Any]:
    profile = str(row.get("canonical_profile"))
    catalog = getattr(registry, "STRATEGY_CATALOG", None)
    definitions = getattr(catalog, "definitions", {}) or {}
    definition = definitions.get(profile)
    bundled = getattr(definition, "bundled_config_relpath", None)
    entry: dict[str, Any] = {
        "canonical_profile": profile,
        "display_name": row.get("display_name"),
        "domain": row.get("domain"),
        "eligible": row.get("eligible"),
        "enabled": row.get("enabled"),
        "platform": row.get("platform"),
        "required_inputs": None if definition is None else _plain(getattr(definition, "required_inputs", None)),
        "bundled_config": None if bundled is None else str(bundled),
        "bundled_config_present": _bundled_present(None if bundled is None else str(bundled), platform_root),
        "describe": None,
        "adapter": None,
        "error": None,
    }
    try:
        describe = getattr(registry, "describe_platform_runtime_requirements", None)
        if callable(describe):
            answer = describe(profile, platform_id=platform)
            if not isinstance(answer, dict):
                raise TypeError(f"describe_platform_runtime_requirements returned {type(answer).__name__}")
            entry["describe"] = {key: _plain(answer[key]) for key in DESCRIBE_KEYS if key in answer}
        else:
            adapter = registry.get_platform_runtime_adapter(profile, platform_id=platform)
            entry["adapter"] = {
                "require_snapshot_manifest": _plain(getattr(adapter, "require_snapshot_manifest", False)),
                "snapshot_contract_version": _plain(getattr(adapter, "snapshot_contract_version", None)),
            }
    except Exception as error:  # noqa: BLE001 - one profile's failure is recorded for that profile, not guessed around
        entry["error"] = _error_text(error)
    return entry


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="facts_probe")
    parser.add_argument("--platform", required=True)
    parser.add_argument("--root", required=True, type=Path, help="the platform tree at its commit")
    parser.add_argument("--path", action="append", default=[], type=Path, help="a package source root, in order")
    args = parser.parse_args(argv)
    # The document goes to the stdout the parent reads; anything the platform prints goes to stderr.
    result = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    roots = [args.root, *args.path]
    for root in reversed(roots):
        sys.path.insert(0, str(root))
    try:
        import strategy_registry as registry  # type: ignore[import-not-found]  # noqa: I001 - the platform's module, on the path set above
    except ModuleNotFoundError as error:
        if error.name and not _provided(error.name, roots):
            result.write(json.dumps({"probe": PROBE_VERSION, "missing_module": error.name.split(".")[0]}))
            result.flush()
            return MISSING_MODULE_EXIT
        traceback.print_exc()
        return 1
    rows = registry.get_platform_profile_status_matrix()
    catalog = getattr(registry, "STRATEGY_CATALOG", None)
    aliases = getattr(catalog, "profile_aliases", None)
    document = {
        "probe": PROBE_VERSION,
        "platform": args.platform,
        "method": "describe" if callable(getattr(registry, "describe_platform_runtime_requirements", None)) else "catalog",
        "aliases": None if aliases is None else {str(alias): str(name) for alias, name in dict(aliases).items()},
        "profiles": [_profile(registry, dict(row), args.platform, args.root) for row in rows],
    }
    result.write(json.dumps(document, sort_keys=True))
    result.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
