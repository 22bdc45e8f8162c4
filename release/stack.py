"""Loading a stack's config, from ``Pulumi.<stack>.yaml`` (CLI) or from ``pulumi.Config`` (the program).

Both paths end in ``parse_stack``, which reports every problem at once (one line per problem, naming
the service key, the field and the fix) and raises before anything is registered or planned.
"""

from __future__ import annotations

import functools
import typing
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml
from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from components.env import config_problems, profile_config_problems
from components.profiles import ProfileFacts
from release.config import (
    PROJECT_NAME,
    QUOTABLE_PATTERN,
    SERVICE_KEY_PATTERN,
    ConfigError,
    ConfigModel,
    ConfigProblem,
    ReleaseBundle,
    ServiceSpec,
    StackConfig,
)
from release.control_chars import control_char_paths
from release.cutover.scheduling import scheduler_problems
from release.local_files import STACK_FILE_MAX_BYTES, InputFileError, check_yaml_shape, load_json, read_text, yaml_error_text
from release.yaml_core import compose_core, load_core

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILE = "Pulumi.yaml"
RELEASE_KEY = "release"
SERVICES_KEY = "services"
KNOWN_KEYS = (RELEASE_KEY, SERVICES_KEY)


def project_dir(start: Optional[Path] = None) -> Path:
    """The Pulumi project a command works on: the nearest directory holding `Pulumi.yaml`, from `start`
    (default: the current directory) upwards, the way the pulumi CLI finds its project. Stacks and their
    locks sit beside it, so a checkout's commands read that checkout's stack, wherever the code lives."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):  # bounded by the path's depth
        if (directory / PROJECT_FILE).is_file():
            return directory
    raise ConfigError(
        [
            ConfigProblem(
                path=str(here),
                message=f"no {PROJECT_FILE} here or in a parent directory; run from the project's checkout or pass --config-file",
            )
        ],
        "project directory",
    )


def stack_file(stack: str, root: Optional[Path] = None) -> Path:
    """`Pulumi.<stack>.yaml` of the project at `root` (default: the project the current directory is in)."""
    return (root if root is not None else project_dir()) / f"Pulumi.{stack}.yaml"


def _display_path(parts: list[str]) -> str:
    """`config.us-equity-cutover:services.ibkr` is reported as `services.ibkr`, like every other problem."""
    prefix = f"{PROJECT_NAME}:"
    if len(parts) > 1 and parts[0] == "config" and parts[1].startswith(prefix):
        parts = [parts[1][len(prefix) :], *parts[2:]]
    return ".".join(parts)


def duplicate_key_problems(node: Optional[yaml.Node], parts: Optional[list[str]] = None) -> list[ConfigProblem]:
    """Every repeated mapping key in a YAML tree: PyYAML silently keeps the last one, so a second `ibkr:`
    would replace the first without a word."""
    parts = parts or []
    problems: list[ConfigProblem] = []
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in first_line:
                problems.append(
                    ConfigProblem(
                        path=_display_path([*parts, key]),
                        message=f"duplicate key at line {key_node.start_mark.line + 1} (first at line {first_line[key]}); keep one",
                    )
                )
            else:
                first_line[key] = key_node.start_mark.line + 1
            problems += duplicate_key_problems(value_node, [*parts, key])
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += duplicate_key_problems(item, [*parts, str(index)])
    return problems


def _unique_json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads` hook: the same duplicate-key refusal for config the Pulumi CLI hands over as JSON."""
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise _DuplicateJsonKeys(repeated)
    return dict(pairs)


class _DuplicateJsonKeys(ValueError):
    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        super().__init__(", ".join(keys))


def load_stack_file(path: Path) -> StackConfig:
    """Read and validate a stack file; ConfigError for anything wrong, including a missing file."""
    ours, unknown = read_stack_keys(path)
    return parse_stack(ours.get(RELEASE_KEY), ours.get(SERVICES_KEY), source=str(path), extra_problems=unknown)


def read_stack_keys(path: Path) -> tuple[dict[str, Any], list[ConfigProblem]]:
    """This project's keys of a stack file (without the `us-equity-cutover:` prefix), unvalidated, and a
    problem per unknown key of ours; ConfigError when the file cannot be read as a stack file."""
    source = str(path)
    fix = "check --stack/--config-file"
    try:
        text = read_text(path, STACK_FILE_MAX_BYTES, fix)
        check_yaml_shape(text, source, fix)
    except FileNotFoundError as error:
        raise ConfigError([ConfigProblem(path=source, message=f"cannot read ({error.strerror}); {fix}")], source) from None
    except InputFileError as error:
        raise ConfigError([ConfigProblem(path=source, message=f"{error.what}; {error.fix}")], source) from None
    try:
        duplicates = duplicate_key_problems(compose_core(text))
        if duplicates:
            raise ConfigError(duplicates, source)
        document = load_core(text)
    except yaml.YAMLError as error:
        raise ConfigError([ConfigProblem(path=source, message=f"is not valid YAML: {yaml_error_text(error)}")], source) from None
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise ConfigError([ConfigProblem(path="config", message="missing; a stack file has a top-level config: map")], source)
    prefix = f"{PROJECT_NAME}:"
    ours = {key[len(prefix) :]: value for key, value in config.items() if str(key).startswith(prefix)}
    unknown = [
        ConfigProblem(path=key, message=f"is not a known key; this project reads {', '.join(KNOWN_KEYS)}")
        for key in sorted(ours)
        if key not in KNOWN_KEYS
    ]
    return ours, unknown


def load_pulumi_config() -> StackConfig:
    """The program's view: the same two keys through `pulumi.Config`, validated by the same function."""
    import pulumi

    config = pulumi.Config(PROJECT_NAME)
    source = f"stack {pulumi.get_stack()} config"
    raw: dict[str, Any] = {}
    problems: list[ConfigProblem] = []
    for key in KNOWN_KEYS:
        text = config.get(key)
        if text is None:
            continue
        try:
            if len(text) > STACK_FILE_MAX_BYTES:
                raise InputFileError(f"is longer than the bound of {STACK_FILE_MAX_BYTES} characters", key, "shorten it")
            raw[key] = load_json(text, key, f"set {PROJECT_NAME}:{key} as a YAML/JSON object", _unique_json_object)
        except _DuplicateJsonKeys as error:
            problems += [ConfigProblem(path=f"{key}.{name}", message="duplicate key; keep one") for name in error.keys]
        except InputFileError as error:
            message = (
                f"is not a map; set {PROJECT_NAME}:{key} as YAML/JSON object"
                if "valid JSON" in error.what
                else f"{error.what}; {error.fix}"
            )
            problems.append(ConfigProblem(path=key, message=message))
    if problems:
        raise ConfigError(problems, source)
    return parse_stack(raw.get(RELEASE_KEY), raw.get(SERVICES_KEY), source=source)


@functools.cache
def _known_keys() -> frozenset[str]:
    """Every camelCase key a stack config may hold, for "did you mean" hints: the fields of every model
    reachable from the two top-level ones (so a model added to ServiceSpec is covered without a list)."""
    keys: set[str] = set()
    pending: list[Any] = [ReleaseBundle, ServiceSpec]
    seen: set[Any] = set()
    while pending:
        kind = pending.pop()
        if kind in seen:
            continue
        seen.add(kind)
        if isinstance(kind, type) and issubclass(kind, ConfigModel):
            for name, field in kind.model_fields.items():
                keys.add(field.alias or name)
                pending.append(field.annotation)
        else:
            pending.extend(typing.get_args(kind))
    return frozenset(keys)


def _meant_key(key: str) -> Optional[str]:
    """The known key an unknown one was probably meant to be: its camelCase form, or a close spelling."""
    known = _known_keys()
    if to_camel(key) in known and to_camel(key) != key:
        return to_camel(key)
    guess = next(iter(get_close_matches(key, sorted(known), n=1, cutoff=0.8)), None)
    return guess if guess != key else None


def _spelling_hint(key: str) -> str:
    """One spelling per key: `strategy_profile` is unknown; the hint names the key it was meant to be."""
    guess = _meant_key(key)
    if guess is not None:
        return f"did you mean {guess}? (keys are camelCase, one spelling each)"
    return "check its spelling against the README's stack config reference"


def _pydantic_problems(prefix: str, error: ValidationError) -> list[ConfigProblem]:
    problems = []
    items = error.errors()
    # `strategy_profile: x` also leaves strategyProfile missing; the "did you mean" line says it all.
    meant = {(*item["loc"][:-1], _meant_key(str(item["loc"][-1]))) for item in items if item["type"] == "extra_forbidden" and item["loc"]}
    for item in items:
        # A refused mapping key is reported at the key itself (pydantic adds a "[key]" part).
        path = ".".join([prefix, *(str(part) for part in item["loc"] if part != "[key]")])
        kind, message = item["type"], item["msg"]
        if kind == "missing" and tuple(item["loc"]) in meant:
            continue
        if kind == "missing":
            message = "is required"
        elif kind == "extra_forbidden":
            message = "is not a known field; " + _spelling_hint(str(item["loc"][-1]) if item["loc"] else "")
        elif kind == "literal_error":
            # "Input should be 'ibkr', 'schwab' or 'longbridge'" names the choices but not the bad value; the
            # value is quoted back only when it cannot be a credential or a terminal escape.
            value = item["input"]
            shown = repr(value) if isinstance(value, str) and QUOTABLE_PATTERN.fullmatch(value) else "this value"
            message = f"{shown} is not allowed; {message.replace('Input should be', 'use', 1)}"
        elif kind == "string_type":
            # The value is not echoed: it may be a credential pasted into the wrong place.
            message = "is not a string; quote it in the stack file"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        problems.append(ConfigProblem(path=path, message=message))
    return problems


def parse_stack(
    release_raw: Any,
    services_raw: Any,
    source: str = "stack config",
    extra_problems: Optional[list[ConfigProblem]] = None,
) -> StackConfig:
    problems: list[ConfigProblem] = list(extra_problems or [])
    # Values are printed in plans and logs: a newline would forge report lines, ESC would reach a terminal.
    problems += [
        ConfigProblem(path=path, message=f"contains a control character ({code}); remove it")
        for path, code in control_char_paths(release_raw, RELEASE_KEY) + control_char_paths(services_raw, SERVICES_KEY)
    ]
    bundle: Optional[ReleaseBundle] = None
    if release_raw is None:
        problems.append(ConfigProblem(path=RELEASE_KEY, message=f"missing; set {PROJECT_NAME}:{RELEASE_KEY} with the bundle's tags"))
    else:
        try:
            bundle = ReleaseBundle.model_validate(release_raw, by_alias=True, by_name=False)
        except ValidationError as error:
            problems += _pydantic_problems(RELEASE_KEY, error)

    services: dict[str, ServiceSpec] = {}
    if not isinstance(services_raw, Mapping) or not services_raw:
        problems.append(
            ConfigProblem(
                path=SERVICES_KEY, message=f"missing or empty; set {PROJECT_NAME}:{SERVICES_KEY} to a map of service key -> service"
            )
        )
    else:
        for key, raw in services_raw.items():
            if not isinstance(key, str):
                # YAML reads `123:` as a number; the Pulumi CLI hands the program a string, so the two would differ.
                problems.append(ConfigProblem(path=f"{SERVICES_KEY}.{key}", message='service keys are strings; quote it, e.g. "123"'))
                continue
            if not SERVICE_KEY_PATTERN.fullmatch(key):
                problems.append(
                    ConfigProblem(path=f"{SERVICES_KEY}.{key}", message="service keys are lowercase a-z, 0-9 and -, e.g. longbridge-hk")
                )
                continue
            try:
                services[key] = ServiceSpec.model_validate(raw, by_alias=True, by_name=False)
            except ValidationError as error:
                problems += _pydantic_problems(f"{SERVICES_KEY}.{key}", error)

    # Profile rules need the facts the gate proves from the pinned sources, so they run once those are
    # known (`raise_profile_problems`), still before anything is registered or planned.
    problems += config_problems(services)
    for key, spec in services.items():
        problems += scheduler_problems(key, spec)
    if problems:
        raise ConfigError(problems, source)
    assert bundle is not None
    return StackConfig(release=bundle, services=services)


def raise_profile_problems(config: StackConfig, facts: ProfileFacts, source: str = "stack config") -> None:
    """Second stage of validation, once the profile facts are proved: ConfigError listing every problem."""
    problems = profile_config_problems(config.services, facts)
    if problems:
        raise ConfigError(problems, source)
