"""Profile facts read from UES and platform source files without importing them (issue 8).

UES exposes its catalog only as Python, and importing it would run QPK and UES code from the network. At
the releases this project deploys the facts are literal module-level data: `catalog.py` builds
`STRATEGY_PLATFORM_COMPATIBILITY`, `STRATEGY_REQUIRED_INPUTS`, `STRATEGY_TARGET_MODES`,
`STRATEGY_BUNDLED_CONFIG_RELPATHS` and `STRATEGY_METADATA` from named constants; `runtime_adapters.py`
holds a literal per-platform adapter dict whose manifest fields are constants of a sibling strategy
module; a platform's `strategy_registry.py` has a `*_ROLLOUT_ALLOWLIST = frozenset({...})` and a
`PlatformCapabilityMatrix(...)` call with literal arguments.

So the files are parsed with `ast` and only those constants are evaluated: literals, containers, names
bound at module level, `frozenset(...)`/`set(...)`/`tuple(...)` of literals, subscripts, and names
imported from modules of the same package (read through the same `read` callback). A name imported from
another package (QPK's `US_EQUITY_DOMAIN`) stays a symbol, `quant_platform_kit.common.strategies.US_EQUITY_DOMAIN`,
compared by name. A constructor call (`StrategyMetadata(...)`) is kept unevaluated and only the keywords
asked for are evaluated, so an adapter's function-valued fields are never touched. Anything else (a
comprehension, a function's result, arithmetic) raises `FactsReadError` naming the file, the line and the
construct: the gate fails closed instead of guessing.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from components.platforms import PLATFORMS
from components.profiles import Capability, CatalogProfile, PlatformFacts, RuntimeAdapter, SourceFile, UesFacts
from release.config import PlatformId

UES_PACKAGE = "us_equity_strategies"
# Where the package lives in the UES repository: the src layout of every release so far, then flat.
UES_PACKAGE_DIRS = (f"src/{UES_PACKAGE}", UES_PACKAGE)
CATALOG_MODULE = f"{UES_PACKAGE}.catalog"
ADAPTERS_MODULE = f"{UES_PACKAGE}.runtime_adapters"
REGISTRY_PATH = "strategy_registry.py"

MAX_SOURCE_CHARS = 1_000_000  # a source file bigger than this is not the small data module we expect
MAX_MODULES = 16  # modules one reader may follow through imports
MAX_DEPTH = 100  # nesting of one evaluated expression, names followed included

ReadFile = Callable[[str], Optional[str]]
"""path in the repository -> text, None when the file does not exist there."""


class FactsReadError(Exception):
    """A source file the reader cannot turn into a fact: where, what it found, what it expected."""

    def __init__(self, path: str, line: int, found: str, expected: str) -> None:
        self.path, self.line, self.found, self.expected = path, line, found, expected
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.found}; expected {self.expected}"


@dataclass(frozen=True)
class Symbol:
    """A name imported from outside the package being read; two symbols are equal when they name the same thing."""

    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class ModuleRef:
    module: "SourceModule"


@dataclass(frozen=True, repr=False)
class CallRecord:
    """An unevaluated call such as `StrategyMetadata(display_name=...)`: keywords are evaluated on demand."""

    func: str
    node: ast.Call = field(compare=False)
    module: "SourceModule" = field(compare=False)

    def __repr__(self) -> str:
        return f"a call to {self.func}(...)"

    @property
    def line(self) -> int:
        return self.node.lineno

    def has(self, name: str) -> bool:
        return any(keyword.arg == name for keyword in self.node.keywords)

    def keyword(self, name: str) -> Any:
        for keyword in self.node.keywords:
            if keyword.arg == name:
                return self.module.evaluate(keyword.value)
        raise FactsReadError(self.module.path, self.line, f"{self.func}(...) has no {name}= argument", f"{name}=<literal>")


_MISSING = object()
_BUILTIN_CONTAINERS = {"frozenset": frozenset, "set": frozenset, "tuple": tuple, "list": tuple}


def _construct(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001 - describing the node must never fail the description
        text = type(node).__name__
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:79] + "…"


def _dotted(node: ast.expr) -> Optional[str]:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


@functools.lru_cache(maxsize=256)
def _parsed(text: str, path: str) -> ast.Module:
    """Parsed once per distinct file: the gate reads the same files in every pass while it explores.
    The trees are only read, never changed, so sharing one between passes is safe."""
    return ast.parse(text, filename=path)


class SourceModule:
    """One parsed module: its module-level bindings and imports, evaluated on demand."""

    def __init__(self, name: str, path: str, text: str, package: "PackageSource") -> None:
        self.name, self.path, self.package = name, path, package
        if len(text) > MAX_SOURCE_CHARS:
            raise FactsReadError(path, 1, f"file has {len(text)} characters", f"at most {MAX_SOURCE_CHARS}")
        try:
            tree = _parsed(text, path)
        except SyntaxError as error:
            raise FactsReadError(path, error.lineno or 1, f"does not parse ({error.msg})", "valid Python") from None
        except (RecursionError, MemoryError, ValueError) as error:
            raise FactsReadError(path, 1, f"does not parse ({type(error).__name__})", "valid Python") from None
        self.tree = tree
        self.bindings: dict[str, ast.expr] = {}
        self.lines: dict[str, int] = {}
        self.imports: dict[str, tuple[str, Optional[str]]] = {}  # local name -> (module, attribute or None)
        for statement in tree.body:
            self._bind(statement)
        self._evaluating: set[str] = set()
        self._depth = 0

    def _bind(self, statement: ast.stmt) -> None:
        if isinstance(statement, ast.Assign):
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    self._set(target.id, statement.value, statement.lineno)
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) and statement.value is not None:
            self._set(statement.target.id, statement.value, statement.lineno)
        elif isinstance(statement, ast.ImportFrom):
            base = self._absolute(statement.module or "", statement.level)
            for alias in statement.names:
                self._forget(alias.asname or alias.name)
                self.imports[alias.asname or alias.name] = (base, alias.name)
        elif isinstance(statement, ast.Import):
            for alias in statement.names:
                local = alias.asname or alias.name.split(".")[0]
                self._forget(local)
                self.imports[local] = (alias.name if alias.asname else local, None)
        elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            # A def rebinds the name to something that is not a constant.
            self._forget(statement.name)

    def _set(self, name: str, value: ast.expr, line: int) -> None:
        self.imports.pop(name, None)
        self.bindings[name] = value
        self.lines[name] = line

    def _forget(self, name: str) -> None:
        self.bindings.pop(name, None)
        self.lines.pop(name, None)

    def _absolute(self, module: str, level: int) -> str:
        if level == 0:
            return module
        parts = self.name.split(".")
        # A module's package is its name minus the last part (a package's __init__ is its own package).
        base = parts[: len(parts) - level] if not self.path.endswith("__init__.py") else parts[: len(parts) - level + 1]
        return ".".join([*base, module] if module else base)

    # -- evaluation ---------------------------------------------------------------------------------

    def defines(self, name: str) -> bool:
        return name in self.bindings or name in self.imports

    def line_of(self, name: str) -> int:
        return self.lines.get(name, 1)

    def value(self, name: str, line: int = 1) -> Any:
        """The value of a module-level name: a constant, an imported constant, a module or a symbol."""
        if name in self.bindings:
            if name in self._evaluating:
                raise FactsReadError(self.path, self.lines[name], f"{name} refers to itself", "a constant")
            self._evaluating.add(name)
            try:
                return self.evaluate(self.bindings[name])
            finally:
                self._evaluating.discard(name)
        if name in self.imports:
            module, attribute = self.imports[name]
            return self.package.imported(module, attribute, self.path, line)
        raise FactsReadError(self.path, line, f"{name} is not bound at module level", "a module-level constant")

    def evaluate(self, node: ast.expr) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise FactsReadError(self.path, node.lineno, "expression nested too deeply", f"at most {MAX_DEPTH} levels")
            return self._evaluate(node)
        finally:
            self._depth -= 1

    def _evaluate(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            if node.value is None or isinstance(node.value, (str, int, float, bool)):
                return node.value
        elif isinstance(node, ast.Name):
            return self.value(node.id, node.lineno)
        elif isinstance(node, ast.Attribute):
            base = self.evaluate(node.value)
            if isinstance(base, ModuleRef):
                return base.module.value(node.attr, node.lineno)
            if isinstance(base, Symbol):
                return Symbol(base.module, f"{base.name}.{node.attr}")
        elif isinstance(node, (ast.Tuple, ast.List)):
            return tuple(self._items(node.elts))
        elif isinstance(node, ast.Set):
            return frozenset(self._hashable(item, node) for item in self._items(node.elts))
        elif isinstance(node, ast.Dict):
            result: dict[Any, Any] = {}
            for key, value in zip(node.keys, node.values, strict=True):
                if key is None:
                    break  # `**other`: falls through to the refusal below
                result[self._hashable(self.evaluate(key), key)] = self.evaluate(value)
            else:
                return result
        elif isinstance(node, ast.Subscript):
            base = self.evaluate(node.value)
            index = self.evaluate(node.slice)
            if isinstance(base, dict) and self._is_hashable(index) and index in base:
                return base[index]
            if isinstance(base, tuple) and isinstance(index, int) and -len(base) <= index < len(base):
                return base[index]
            raise FactsReadError(self.path, node.lineno, f"`{_construct(node)}` indexes a missing key {index!r}", "a key of that constant")
        elif isinstance(node, ast.Call):
            func = _dotted(node.func)
            if func in _BUILTIN_CONTAINERS and not self.defines(func):
                if node.keywords or len(node.args) > 1 or any(isinstance(arg, ast.Starred) for arg in node.args):
                    raise FactsReadError(self.path, node.lineno, f"`{_construct(node)}`", f"{func}() of one literal")
                items = self.evaluate(node.args[0]) if node.args else ()
                if not isinstance(items, (tuple, frozenset, dict, str)):
                    raise FactsReadError(self.path, node.lineno, f"`{_construct(node)}`", f"{func}() of a literal container")
                if _BUILTIN_CONTAINERS[func] is frozenset:
                    return frozenset(self._hashable(item, node) for item in items)
                return tuple(items)
            if (
                func is not None
                and not any(isinstance(arg, ast.Starred) for arg in node.args)
                and all(keyword.arg is not None for keyword in node.keywords)
            ):
                return CallRecord(func.rsplit(".", 1)[-1], node, self)
        raise FactsReadError(
            self.path,
            node.lineno,
            f"cannot evaluate {type(node).__name__} `{_construct(node)}`",
            "a literal, a module-level constant or a constant imported from the same package",
        )

    def _items(self, elements: list[ast.expr]) -> Iterable[Any]:
        for element in elements:
            if isinstance(element, ast.Starred):
                raise FactsReadError(self.path, element.lineno, f"cannot evaluate unpacking `{_construct(element)}`", "literal items")
            yield self.evaluate(element)

    @staticmethod
    def _is_hashable(value: Any) -> bool:
        try:
            hash(value)
        except TypeError:
            return False
        return True

    def _hashable(self, value: Any, node: ast.AST) -> Any:
        if not self._is_hashable(value) or isinstance(value, (CallRecord, ModuleRef)):
            raise FactsReadError(self.path, getattr(node, "lineno", 1), f"`{_construct(node)}` is not a plain value", "strings or numbers")
        return value

    def calls_to(self, func: str) -> list[CallRecord]:
        """Every call of `func` (by its last name) anywhere in the module, e.g. inside a builder function."""
        return [
            CallRecord(func, node, self)
            for node in ast.walk(self.tree)
            if isinstance(node, ast.Call) and (_dotted(node.func) or "").rsplit(".", 1)[-1] == func
        ]


class PackageSource:
    """The modules of one package, read through `read` on first use (each file at most once)."""

    def __init__(self, package: str, directory: str, read: ReadFile) -> None:
        self.package, self.directory, self._read = package, directory.rstrip("/"), read
        self._modules: dict[str, Optional[SourceModule]] = {}

    def owns(self, module: str) -> bool:
        return bool(self.package) and (module == self.package or module.startswith(self.package + "."))

    def module(self, name: str) -> Optional[SourceModule]:
        if name not in self._modules:
            if not self.owns(name):
                return None
            if len(self._modules) >= MAX_MODULES:
                raise FactsReadError(self.directory, 1, f"more than {MAX_MODULES} modules followed", "a few constant modules")
            relative = name[len(self.package) :].lstrip(".").replace(".", "/")
            base = f"{self.directory}/{relative}" if relative else self.directory
            self._modules[name] = None
            for path in (f"{base}.py", f"{base}/__init__.py") if relative else (f"{base}/__init__.py",):
                text = self._read(path)
                if text is not None:
                    self._modules[name] = SourceModule(name, path, text, self)
                    break
        return self._modules[name]

    def imported(self, module: str, attribute: Optional[str], path: str, line: int) -> Any:
        """What `from module import attribute` (or `import module`) binds, followed inside the package only."""
        if not self.owns(module):
            return Symbol(module, attribute) if attribute else Symbol(module, "")
        if attribute is not None:
            submodule = self.module(f"{module}.{attribute}")
            if submodule is not None:
                return ModuleRef(submodule)
        source = self.module(module)
        if source is None:
            raise FactsReadError(path, line, f"imports {module}, which is not in the package", f"a module of {self.package}")
        if attribute is None:
            return ModuleRef(source)
        return source.value(attribute, line)


def standalone_module(name: str, path: str, text: str) -> SourceModule:
    """A module read on its own (a platform's registry): every import is a symbol."""
    return SourceModule(name, path, text, PackageSource("", path, lambda _path: None))


# -- typed reading ------------------------------------------------------------------------------------


def _names(value: Any) -> Optional[tuple[str, ...]]:
    """A frozenset/tuple of strings (or imported symbols) as sorted strings; None for any other shape."""
    if not isinstance(value, (frozenset, tuple)):
        return None
    if not all(isinstance(item, (str, Symbol)) for item in value):
        return None
    return tuple(sorted({str(item) for item in value}))


def _constant(module: SourceModule, name: str, optional: bool = False) -> Any:
    if not module.defines(name):
        if optional:
            return _MISSING
        raise FactsReadError(module.path, 1, f"{name} is not defined at module level", f"a module-level {name}")
    return module.value(name, module.line_of(name))


def _str_map(module: SourceModule, name: str, value: Any, item: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise FactsReadError(
            module.path, module.line_of(name), f"{name} is a {type(value).__name__}", f"a dict keyed by profile name ({item})"
        )
    return value


@dataclass(frozen=True)
class CatalogFacts:
    domain: str
    profiles: dict[str, CatalogProfile]
    files: tuple[str, ...]


def read_catalog(package: PackageSource) -> CatalogFacts:
    """Profiles, aliases, display names, status, compatibility, required inputs, target mode, bundled config."""
    module = package.module(CATALOG_MODULE)
    if module is None:
        where = f"{package.directory}/catalog.py"
        raise FactsReadError(where, 1, "file not found", f"UES's catalog module {CATALOG_MODULE}")
    tables: dict[str, dict[str, Any]] = {}
    for name, item, optional in (
        ("STRATEGY_PLATFORM_COMPATIBILITY", "a frozenset of platform ids", False),
        ("STRATEGY_REQUIRED_INPUTS", "a frozenset of input names", False),
        ("STRATEGY_TARGET_MODES", "a target mode string", False),
        ("STRATEGY_BUNDLED_CONFIG_RELPATHS", "a path in the platform repository", True),
        ("STRATEGY_METADATA", "a StrategyMetadata(...)", False),
    ):
        value = _constant(module, name, optional)
        tables[name] = {} if value is _MISSING else _str_map(module, name, value, item)

    def entry(table: str, profile: str, check: Callable[[Any], bool], expected: str) -> Any:
        value = tables[table].get(profile, _MISSING)
        if value is _MISSING:
            raise FactsReadError(
                module.path,
                module.line_of(table),
                f"{table} has no entry for profile {profile!r}",
                f"every profile of STRATEGY_METADATA in {table}",
            )
        if not check(value):
            raise FactsReadError(module.path, module.line_of(table), f"{table}[{profile!r}] is {value!r}", expected)
        return value

    profiles: dict[str, CatalogProfile] = {}
    for profile, record in tables["STRATEGY_METADATA"].items():
        if not isinstance(record, CallRecord) or record.func != "StrategyMetadata":
            raise FactsReadError(
                module.path, module.line_of("STRATEGY_METADATA"), f"STRATEGY_METADATA[{profile!r}] is {record!r}", "StrategyMetadata(...)"
            )
        fields: dict[str, Any] = {}
        checks: tuple[tuple[str, Callable[[Any], object], str], ...] = (
            ("display_name", lambda v: isinstance(v, str) and v.strip(), "a display name string"),
            ("status", lambda v: isinstance(v, str) and v, "a status string"),
        )
        for keyword, check, expected in checks:
            fields[keyword] = record.keyword(keyword)
            if not check(fields[keyword]):
                raise FactsReadError(module.path, record.line, f"{keyword}={fields[keyword]!r}", expected)
        aliases = record.keyword("aliases") if record.has("aliases") else ()
        if not isinstance(aliases, tuple) or not all(isinstance(alias, str) for alias in aliases):
            raise FactsReadError(module.path, record.line, f"aliases={aliases!r}", "a tuple of alias strings")
        if record.has("canonical_profile") and record.keyword("canonical_profile") != profile:
            raise FactsReadError(
                module.path,
                record.line,
                f"canonical_profile={record.keyword('canonical_profile')!r} under key {profile!r}",
                "the same profile name",
            )
        platforms = _names(
            entry("STRATEGY_PLATFORM_COMPATIBILITY", profile, lambda v: _names(v) is not None, "a frozenset of platform ids")
        )
        inputs = _names(entry("STRATEGY_REQUIRED_INPUTS", profile, lambda v: _names(v) is not None, "a frozenset of input names"))
        mode = entry("STRATEGY_TARGET_MODES", profile, lambda v: isinstance(v, str), "a target mode string")
        bundled = tables["STRATEGY_BUNDLED_CONFIG_RELPATHS"].get(profile)
        if bundled is not None and not (
            isinstance(bundled, str) and bundled and not bundled.startswith("/") and ".." not in bundled.split("/")
        ):
            raise FactsReadError(
                module.path,
                module.line_of("STRATEGY_BUNDLED_CONFIG_RELPATHS"),
                f"bundled config {bundled!r}",
                "a relative path inside the platform repository",
            )
        profiles[profile] = CatalogProfile(
            display_name=fields["display_name"], status=fields["status"], aliases=tuple(aliases),
            compatible_platforms=platforms or (), required_inputs=inputs or (), target_mode=mode, bundled_config=bundled,
        )  # fmt: skip
    for table in (
        "STRATEGY_PLATFORM_COMPATIBILITY",
        "STRATEGY_REQUIRED_INPUTS",
        "STRATEGY_TARGET_MODES",
        "STRATEGY_BUNDLED_CONFIG_RELPATHS",
    ):
        unknown = sorted(set(tables[table]) - set(profiles))
        if unknown:
            raise FactsReadError(
                module.path,
                module.line_of(table),
                f"{table} names {', '.join(unknown)}, which STRATEGY_METADATA does not",
                "profiles the catalog knows",
            )
    domains = set()
    for call in module.calls_to("StrategyDefinition"):
        if call.has("domain"):
            value = call.keyword("domain")
            if not isinstance(value, (str, Symbol)):
                raise FactsReadError(module.path, call.line, f"domain={value!r}", "a domain constant")
            domains.add(str(value))
    if len(domains) != 1:
        found = ", ".join(sorted(domains)) or "no StrategyDefinition(domain=...)"
        raise FactsReadError(module.path, 1, f"strategy domain: {found}", "one domain for every StrategyDefinition")
    return CatalogFacts(domain=domains.pop(), profiles=profiles, files=(module.path,))


def read_adapters(package: PackageSource, aliases: dict[str, str], known: set[str]) -> dict[str, dict[str, RuntimeAdapter]]:
    """platform id -> canonical profile -> what the adapter says about the snapshot manifest."""
    module = package.module(ADAPTERS_MODULE)
    if module is None:
        raise FactsReadError(f"{package.directory}/runtime_adapters.py", 1, "file not found", f"UES's {ADAPTERS_MODULE}")
    name = "PLATFORM_RUNTIME_ADAPTERS"
    table = _constant(module, name)
    if not isinstance(table, dict):
        raise FactsReadError(
            module.path,
            module.line_of(name),
            f"{name} is a {type(table).__name__}",
            "a dict of platform id -> {profile: StrategyRuntimeAdapter(...)}",
        )
    result: dict[str, dict[str, RuntimeAdapter]] = {}
    for platform, adapters in table.items():
        if not isinstance(platform, str) or not isinstance(adapters, dict):
            raise FactsReadError(module.path, module.line_of(name), f"{name} entry {platform!r}", "platform id -> dict of adapters")
        result[platform] = {}
        for profile, record in adapters.items():
            if not isinstance(profile, str) or not isinstance(record, CallRecord) or record.func != "StrategyRuntimeAdapter":
                raise FactsReadError(
                    module.path,
                    getattr(record, "line", module.line_of(name)),
                    f"{platform} adapter {profile!r}",
                    "profile name -> StrategyRuntimeAdapter(...)",
                )
            canonical = aliases.get(profile, profile)
            if canonical not in known:
                raise FactsReadError(
                    module.path,
                    record.line,
                    f"{platform} adapter for {profile!r}, a profile the catalog does not know",
                    "a catalog profile",
                )
            manifest = record.keyword("require_snapshot_manifest") if record.has("require_snapshot_manifest") else False
            contract = record.keyword("snapshot_contract_version") if record.has("snapshot_contract_version") else None
            if not isinstance(manifest, bool):
                raise FactsReadError(module.path, record.line, f"require_snapshot_manifest={manifest!r}", "True or False")
            if contract is not None and not (isinstance(contract, str) and contract):
                raise FactsReadError(module.path, record.line, f"snapshot_contract_version={contract!r}", "a contract version string")
            result[platform][canonical] = RuntimeAdapter(requires_snapshot_manifest=manifest, manifest_contract=contract)
    return result


@dataclass(frozen=True)
class RegistryFacts:
    rollout_allowlist: tuple[str, ...]
    capability: Capability


def read_registry(platform: PlatformId, text: str, path: str = REGISTRY_PATH) -> RegistryFacts:
    """A platform's rollout allowlist and its PlatformCapabilityMatrix(...) arguments."""
    module = standalone_module("strategy_registry", path, text)
    name = f"{PLATFORMS[platform].env_prefix}_ROLLOUT_ALLOWLIST"
    allowlist = _names(_constant(module, name))
    if allowlist is None or any(not isinstance(item, str) for item in allowlist):
        raise FactsReadError(path, module.line_of(name), f"{name} is not a set of profile names", "frozenset({...}) of profile names")
    matrices = [
        (binding, value)
        for binding, value in module.bindings.items()
        if isinstance(value, ast.Call) and (_dotted(value.func) or "").rsplit(".", 1)[-1] == "PlatformCapabilityMatrix"
    ]
    if len(matrices) != 1:
        raise FactsReadError(path, 1, f"{len(matrices)} module-level PlatformCapabilityMatrix(...) assignments", "exactly one")
    binding, _ = matrices[0]
    record = module.value(binding, module.line_of(binding))
    assert isinstance(record, CallRecord)
    platform_id = record.keyword("platform_id")
    if platform_id != platform:
        raise FactsReadError(path, record.line, f"PlatformCapabilityMatrix(platform_id={platform_id!r})", f"platform_id {platform!r}")
    sets: dict[str, tuple[str, ...]] = {}
    for keyword in ("supported_domains", "supported_target_modes", "supported_inputs"):
        names = _names(record.keyword(keyword))
        if names is None:
            raise FactsReadError(
                path, record.line, f"PlatformCapabilityMatrix({keyword}=...) is not a set of names", f"{keyword}=frozenset({{...}})"
            )
        sets[keyword] = names
    return RegistryFacts(rollout_allowlist=allowlist, capability=Capability(**sets))


# -- whole facts from one repository ------------------------------------------------------------------


@dataclass
class RepoFiles:
    """The files of one repository at one commit, as a source serves them; records what was read.

    `read_text(path)` is the text or None when absent; `blob_of(path)` the git blob id (None when absent);
    `present(paths)` which of `paths` exist. Source faults (SourceError) pass through untouched.
    """

    repo: str
    ref: str
    commit: str
    read_text: Callable[[str], Optional[str]]
    blob_of: Callable[[str], Optional[str]]
    present: Callable[[tuple[str, ...]], frozenset[str]]
    files: list[SourceFile] = field(default_factory=list)

    def read(self, path: str) -> Optional[str]:
        text = self.read_text(path)
        if text is not None:
            self._record(path)
        return text

    def existing(self, paths: tuple[str, ...]) -> tuple[str, ...]:
        found = tuple(sorted(self.present(paths)))
        for path in found:
            self._record(path)
        return found

    def _record(self, path: str) -> None:
        blob = self.blob_of(path)
        if blob is None:
            raise FactsReadError(path, 1, "listed but has no blob id", "a file of the commit's tree")
        if all(known.path != path for known in self.files):
            self.files.append(SourceFile(repo=self.repo, ref=self.ref, commit=self.commit, path=path, blob=blob))


def read_ues_facts(files: RepoFiles) -> UesFacts:
    """UES at one tag: catalog profiles, aliases, domain and the runtime adapters' manifest facts."""
    directory = next((d for d in UES_PACKAGE_DIRS if files.present((f"{d}/catalog.py",))), None)
    if directory is None:
        raise FactsReadError(
            f"{UES_PACKAGE_DIRS[0]}/catalog.py", 1, f"no catalog.py in {' or '.join(UES_PACKAGE_DIRS)}", f"UES's {CATALOG_MODULE}"
        )
    package = PackageSource(UES_PACKAGE, directory, files.read)
    catalog = read_catalog(package)
    aliases = {alias: name for name, profile in catalog.profiles.items() for alias in profile.aliases}
    adapters = read_adapters(package, aliases, set(catalog.profiles))
    try:
        return UesFacts(
            repo=files.repo, tag=files.ref, commit=files.commit, domain=catalog.domain, profiles=catalog.profiles,
            adapters=adapters, files=tuple(sorted(files.files, key=lambda f: f.path)),
        )  # fmt: skip
    except ValueError as error:  # pydantic: e.g. an alias that is also a profile
        raise FactsReadError(
            catalog.files[0], 1, f"inconsistent catalog ({_first_error(error)})", "aliases that are old names only"
        ) from None


def read_platform_facts(files: RepoFiles, platform: PlatformId, bundled_configs: Iterable[str]) -> PlatformFacts:
    """A platform at one commit: its rollout allowlist, capability matrix and which bundled configs it has."""
    text = files.read(REGISTRY_PATH)
    if text is None:
        raise FactsReadError(REGISTRY_PATH, 1, f"no {REGISTRY_PATH} at {files.repo}@{files.commit[:7]}", "the platform's strategy registry")
    registry = read_registry(platform, text)
    present = files.existing(tuple(sorted(set(bundled_configs))))
    return PlatformFacts(
        platform=platform, repo=files.repo, commit=files.commit, rollout_allowlist=registry.rollout_allowlist,
        capability=registry.capability, bundled_configs=present, files=tuple(sorted(files.files, key=lambda f: f.path)),
    )  # fmt: skip


def bundled_config_paths(ues: UesFacts) -> tuple[str, ...]:
    return tuple(sorted({profile.bundled_config for profile in ues.profiles.values() if profile.bundled_config}))


def _first_error(error: Exception) -> str:
    return str(error).splitlines()[-1][:200] if str(error) else type(error).__name__
