"""The platform table: what differs between IBKR, Schwab and LongBridge (docs/platform-facts.md §1-§3).

Plain data, no Pulumi: env rules, the release gate and the plan all read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from release.config import PlatformId

COMMIT_LABEL = "commit-sha"
TRUTHY = frozenset({"1", "true", "yes", "y", "on"})

# Env that old deploy scripts set and a sync removes; setting one again is always a mistake.
LEGACY_ENV_NAMES = frozenset(
    {"IB_GATEWAY_HOST", "IB_GATEWAY_PORT", "IB_GATEWAY_MODE", "IB_GATEWAY_INSTANCE_NAME", "IB_CLIENT_ID", "TELEGRAM_CHAT_ID"}
)
LEGACY_ENV_PREFIXES = ("CRISIS_ALERT_",)

STRATEGY_PROFILE = "STRATEGY_PROFILE"
RUNTIME_TARGET_JSON = "RUNTIME_TARGET_JSON"
# Today's images read QSL_RUNTIME_TARGET_JSON before RUNTIME_TARGET_JSON (the platforms' `.env.example`), so a
# value there decides the strategy and the mode; the program owns it by never writing it.
QSL_RUNTIME_TARGET_JSON = "QSL_RUNTIME_TARGET_JSON"
# `false` disables the target: the runtime skips it and the platforms' workflows pause its scheduler jobs.
RUNTIME_TARGET_ENABLED = "RUNTIME_TARGET_ENABLED"
# IBKR's account group: which account-group config (and IB Gateway) the service trades through.
ACCOUNT_GROUP = "ACCOUNT_GROUP"
RECONCILIATION_OUTPUT_PATH = "IBKR_RECONCILIATION_OUTPUT_PATH"
ACCOUNT_PREFIX = "ACCOUNT_PREFIX"
ACCOUNT_REGION = "ACCOUNT_REGION"
LONGPORT_SECRET_NAME = "LONGPORT_SECRET_NAME"


@dataclass(frozen=True)
class Platform:
    """One broker platform: its env prefix, repository and what every one of its services must carry."""

    id: PlatformId
    env_prefix: str
    # Env names the runtime reads that the operator supplies through the `env` map / `secrets` map.
    required_env: tuple[str, ...]
    required_secrets: tuple[str, ...]
    concurrency: Optional[int] = None
    # LongBridge runs one service per account region, each in its own GCP region (None: any region).
    account_regions: Optional[Mapping[str, Optional[str]]] = None

    @property
    def dry_run_env(self) -> str:
        return f"{self.env_prefix}_DRY_RUN_ONLY"

    @property
    def feature_snapshot_env(self) -> str:
        return f"{self.env_prefix}_FEATURE_SNAPSHOT_PATH"

    @property
    def manifest_env(self) -> str:
        return f"{self.env_prefix}_FEATURE_SNAPSHOT_MANIFEST_PATH"

    @property
    def strategy_config_env(self) -> str:
        return f"{self.env_prefix}_STRATEGY_CONFIG_PATH"

    @property
    def input_mode_env(self) -> frozenset[str]:
        """Every input-mode name this platform's runtime reads; leaving a snapshot profile removes them all."""
        names = {self.feature_snapshot_env, self.manifest_env, self.strategy_config_env}
        if self.id == "ibkr":
            names.add(RECONCILIATION_OUTPUT_PATH)
        return frozenset(names)

    @property
    def strategy_env(self) -> frozenset[str]:
        """What a strategy switch changes: held at live values while an image rolls out."""
        return self.input_mode_env | {
            STRATEGY_PROFILE,
            RUNTIME_TARGET_JSON,
            QSL_RUNTIME_TARGET_JSON,
            RUNTIME_TARGET_ENABLED,
            self.dry_run_env,
        }

    def default_service_account(self, project: str) -> str:
        return f"{self.id}-platform-runtime@{project}.iam.gserviceaccount.com"


PLATFORMS: Mapping[PlatformId, Platform] = {
    "ibkr": Platform(
        id="ibkr",
        env_prefix="IBKR",
        required_env=("ACCOUNT_GROUP", "IB_ACCOUNT_GROUP_CONFIG_SECRET_NAME", "GLOBAL_TELEGRAM_CHAT_ID"),
        required_secrets=("TELEGRAM_TOKEN",),
        concurrency=1,
    ),
    "schwab": Platform(
        id="schwab",
        env_prefix="SCHWAB",
        required_env=("GLOBAL_TELEGRAM_CHAT_ID",),
        required_secrets=("TELEGRAM_TOKEN", "SCHWAB_API_KEY", "SCHWAB_APP_SECRET"),
    ),
    "longbridge": Platform(
        id="longbridge",
        env_prefix="LONGBRIDGE",
        required_env=("GLOBAL_TELEGRAM_CHAT_ID",),
        required_secrets=("TELEGRAM_TOKEN", "LONGPORT_APP_KEY", "LONGPORT_APP_SECRET"),
        # PAPER (the paper account's Environment) sets its Cloud Run region per Environment: any region.
        account_regions={"PAPER": None, "HK": "asia-east2", "SG": "asia-southeast1"},
    ),
}

# Names the program derives for some platform: never accepted through the plain `env` or `secrets` map,
# whichever platform the service is on (another platform's snapshot var is a stale var waiting to happen).
OWNED_ENV_NAMES = frozenset().union(
    *(platform.strategy_env for platform in PLATFORMS.values()),
    {ACCOUNT_PREFIX, ACCOUNT_REGION, LONGPORT_SECRET_NAME},
)


def is_legacy_env(name: str) -> bool:
    return name in LEGACY_ENV_NAMES or name.startswith(LEGACY_ENV_PREFIXES)


def looks_secret(name: str) -> bool:
    """A name whose value is a credential; `*_SECRET_NAME` holds the name of a secret and stays plain."""
    if name.endswith("_SECRET_NAME"):
        return False
    return any(word in name for word in ("TOKEN", "SECRET", "KEY", "PASSWORD"))


def is_unset_flag(raw: Optional[str]) -> bool:
    """An unset or empty `{P}_DRY_RUN_ONLY`: the seed-era images read it as live trading, later ones as dry
    run, so it has no safe reading and is never interpreted."""
    return raw is None or not raw.strip()


def is_dry_run(raw: str) -> bool:
    """How the platform runtimes read an explicit `{P}_DRY_RUN_ONLY` value (truthy: 1, true, yes, y, on)."""
    if is_unset_flag(raw):
        raise ValueError("an unset or empty dry-run flag has no safe reading; hold an explicit value instead")
    return raw.strip().lower() in TRUTHY


# Recorded on every service this program deploys, so the next run knows which release the live image
# carries (a service without them was deployed by hand: its release is unknown).
QPK_TAG_ANNOTATION = "us-equity-cutover/qpk-tag"
UES_TAG_ANNOTATION = "us-equity-cutover/ues-tag"
