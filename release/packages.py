"""The shared packages a release can name: one row each (docs/platform-facts.md §1 and §8).

A release names each package by its distribution name (the key pip and uv use) and a ref; everything
else about the package is read from this table: its repository, how check ids and messages call it,
whether it is the kit every strategy package requires, whether every platform must install it, and its
key in a platform's `qsl.toml [qsl.requires]`. Adding a package is one row here (and its key under
`release.repositories`, a typed field of the stack model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Package:
    name: str  # distribution name, canonical (PEP 503): quant-platform-kit
    short: str  # in check ids and messages: QPK
    repository: str  # default GitHub repository under release.githubOwner
    repository_key: str  # the field of release.repositories (RepositoryNames) that renames the repository
    kit: bool  # the package every strategy package requires (QPK)
    required: bool  # every platform must install it; a platform without an optional one is only reported
    shorthand: Optional[str] = None  # the seed's release key for it (release.quantPlatformKit)

    @property
    def qsl_key(self) -> str:
        """Its key in `qsl.toml [qsl.requires]`: the import name."""
        return self.name.replace("-", "_")

    @property
    def check_name(self) -> str:
        return self.short.lower()


PACKAGES: tuple[Package, ...] = (
    Package("quant-platform-kit", "QPK", "QuantPlatformKit", "quant_platform_kit", kit=True, required=True, shorthand="quantPlatformKit"),
    Package(
        "us-equity-strategies",
        "UES",
        "UsEquityStrategies",
        "us_equity_strategies",
        kit=False,
        required=True,
        shorthand="usEquityStrategies",
    ),
    Package("hk-equity-strategies", "HK", "HkEquityStrategies", "hk_equity_strategies", kit=False, required=False),
)
BY_NAME: dict[str, Package] = {package.name: package for package in PACKAGES}
KIT: Package = next(package for package in PACKAGES if package.kit)
QPK_PACKAGE = KIT.name
UES_PACKAGE = "us-equity-strategies"
# What every release must name: the kit, and UES (every platform's registry runs over its catalog).
REQUIRED_IN_RELEASE: tuple[str, ...] = (QPK_PACKAGE, UES_PACKAGE)
TRACKED_PACKAGES: tuple[str, ...] = tuple(package.name for package in PACKAGES)

# Where the team's QSL bundles live: compat/bundles/<id>.toml of this repository, at its default branch.
BUNDLE_REPOSITORY = "QuantRuntimeSettings"
BUNDLE_DIRECTORY = "compat/bundles"


def bundle_path(bundle: str) -> str:
    return f"{BUNDLE_DIRECTORY}/{bundle}.toml"


def known_names() -> str:
    return ", ".join(TRACKED_PACKAGES)
