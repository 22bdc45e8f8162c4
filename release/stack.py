"""Loading a stack's config, from ``Pulumi.<stack>.yaml`` (CLI) or from ``pulumi.Config`` (the program).

Both paths end in ``parse_stack``, which reports every problem at once (one line per problem, naming
the service key, the field and the fix) and raises before anything is registered or planned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import yaml
from pydantic import ValidationError

from components.env import config_problems
from components.profiles import UnknownMatrixError, matrix_for
from release.config import (
    PROJECT_NAME,
    SERVICE_KEY_PATTERN,
    ConfigError,
    ConfigProblem,
    ReleaseBundle,
    ServiceSpec,
    StackConfig,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RELEASE_KEY = "release"
SERVICES_KEY = "services"
KNOWN_KEYS = (RELEASE_KEY, SERVICES_KEY)


def stack_file(stack: str, root: Path = PROJECT_ROOT) -> Path:
    return root / f"Pulumi.{stack}.yaml"


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys: a second `ibkr:` must not silently replace the first."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(
                [
                    ConfigProblem(
                        path=str(key),
                        message=f"duplicate key at line {key_node.start_mark.line + 1} "
                        f"(first at line {seen[key] + 1}); keep one",
                    )
                ]
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def load_stack_file(path: Path) -> StackConfig:
    """Read and validate a stack file; ConfigError for anything wrong, including a missing file."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError([ConfigProblem(path=source, message=f"cannot read ({error.strerror}); check --stack/--config-file")], source)
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as error:
        raise ConfigError(error.problems, source) from None
    except yaml.YAMLError as error:
        raise ConfigError([ConfigProblem(path=source, message=f"is not valid YAML: {error}")], source) from None
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
    return parse_stack(ours.get(RELEASE_KEY), ours.get(SERVICES_KEY), source=source, extra_problems=unknown)


def load_pulumi_config() -> StackConfig:
    """The program's view: the same two keys through `pulumi.Config`, validated by the same function."""
    import pulumi

    config = pulumi.Config(PROJECT_NAME)
    return parse_stack(
        config.get_object(RELEASE_KEY), config.get_object(SERVICES_KEY), source=f"stack {pulumi.get_stack()} config"
    )


def _pydantic_problems(prefix: str, error: ValidationError) -> list[ConfigProblem]:
    problems = []
    for item in error.errors():
        path = ".".join([prefix, *(str(part) for part in item["loc"])])
        kind, message = item["type"], item["msg"]
        if kind == "missing":
            message = "is required"
        elif kind == "extra_forbidden":
            message = "is not a known field; check its spelling against the README's stack config reference"
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
    bundle: Optional[ReleaseBundle] = None
    if release_raw is None:
        problems.append(ConfigProblem(path=RELEASE_KEY, message=f"missing; set {PROJECT_NAME}:{RELEASE_KEY} with the bundle's tags"))
    else:
        try:
            bundle = ReleaseBundle.model_validate(release_raw)
        except ValidationError as error:
            problems += _pydantic_problems(RELEASE_KEY, error)

    services: dict[str, ServiceSpec] = {}
    if not isinstance(services_raw, Mapping) or not services_raw:
        problems.append(ConfigProblem(path=SERVICES_KEY, message=f"missing or empty; set {PROJECT_NAME}:{SERVICES_KEY} to a map of service key -> service"))
    else:
        for key, raw in services_raw.items():
            if not SERVICE_KEY_PATTERN.fullmatch(str(key)):
                problems.append(
                    ConfigProblem(path=f"{SERVICES_KEY}.{key}", message="service keys are lowercase a-z, 0-9 and -, e.g. longbridge-hk")
                )
                continue
            try:
                services[key] = ServiceSpec.model_validate(raw)
            except ValidationError as error:
                problems += _pydantic_problems(f"{SERVICES_KEY}.{key}", error)

    if bundle is not None:
        try:
            matrix = matrix_for(bundle.us_equity_strategies)
        except UnknownMatrixError as error:
            problems.append(ConfigProblem(path=f"{RELEASE_KEY}.usEquityStrategies", message=str(error)))
        else:
            problems += config_problems(StackConfig(release=bundle, services=services), matrix)
    if problems:
        raise ConfigError(problems, source)
    assert bundle is not None
    return StackConfig(release=bundle, services=services)
