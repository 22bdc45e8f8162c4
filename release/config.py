"""The stack config models: the typed boundary between ``Pulumi.<stack>.yaml`` and everything else.

Only structure lives here (field shapes, formats, one field against another). The rules that need the
platform table or the proved profile facts live in ``components/env.py``; ``release/stack.py`` runs both and
turns every failure into one ``ConfigProblem`` per problem.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Mapping, Optional, Union

from packaging.version import InvalidVersion, Version
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from release.control_chars import escape_controls
from release.packages import BUNDLE_REPOSITORY, BY_NAME, QPK_PACKAGE, REQUIRED_IN_RELEASE, TRACKED_PACKAGES, UES_PACKAGE, known_names

PROJECT_NAME = "us-equity-cutover"
DEFAULT_GITHUB_OWNER = "QuantStrategyLab"

PlatformId = Literal["ibkr", "schwab", "longbridge"]
# LongBridge's three GitHub Environments (its deploy workflow's matrix): a paper account and two regions.
AccountRegion = Literal["PAPER", "HK", "SG"]
ExecutionMode = Literal["live", "paper"]

# Git object ids and cloud resource names are fixed formats, not versions or requirements, so a pattern is
# the right tool for them (versions and requirement strings go through `packaging`).
COMMIT_PATTERN = re.compile(r"[0-9a-f]{40}")
SERVICE_KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
SERVICE_NAME_PATTERN = re.compile(r"[a-z](?:[-a-z0-9]{0,47}[a-z0-9])?")
GCP_PROJECT_PATTERN = re.compile(r"[a-z][-a-z0-9]{4,28}[a-z0-9]")
GCP_REGION_PATTERN = re.compile(r"[a-z]+-[a-z]+[0-9]{1,2}")
# The Google Cloud regions Cloud Run runs in (2026). A name of the right shape that is not one of them
# (`mars-north1`, `us-centrall1`) is refused: a service "in" it can never be found, described or deployed.
# A region Google adds later is added here.
KNOWN_REGIONS = frozenset(
    {
        "africa-south1", "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast2", "asia-northeast3",
        "asia-south1", "asia-south2", "asia-southeast1", "asia-southeast2", "asia-southeast3", "australia-southeast1",
        "australia-southeast2", "europe-central2", "europe-north1", "europe-north2", "europe-southwest1",
        "europe-west1", "europe-west2", "europe-west3", "europe-west4", "europe-west6", "europe-west8",
        "europe-west9", "europe-west10", "europe-west12", "me-central1", "me-central2", "me-west1",
        "northamerica-northeast1", "northamerica-northeast2", "northamerica-south1", "southamerica-east1",
        "southamerica-west1", "us-central1", "us-east1", "us-east4", "us-east5", "us-south1", "us-west1",
        "us-west2", "us-west3", "us-west4",
    }
)  # fmt: skip
# A Cloud Storage bucket name: ASCII lowercase letters, digits, `-`, `_` and `.`, starting and ending with a
# letter or digit, dot-separated parts of at most 63. A look-alike (Cyrillic `а` for `a`) is another bucket.
GCS_BUCKET_PATTERN = re.compile(r"(?=.{3,222}$)[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?)*")
ENV_NAME_PATTERN = re.compile(r"[A-Z_][A-Z0-9_]*")
SECRET_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,255}")
# A secret of another project (shared secrets): projects/<project id or number>/secrets/<name>.
LONG_SECRET_PATTERN = re.compile(r"projects/(?:[a-z][-a-z0-9]{4,28}[a-z0-9]|[0-9]{1,20})/secrets/[A-Za-z0-9_-]{1,255}")
CPU_PATTERN = re.compile(r"[1-9][0-9]*(?:\.[0-9]+)?|[1-9][0-9]*m")
MEMORY_PATTERN = re.compile(r"[1-9][0-9]*(?:Mi|Gi)")
NETWORK_NAME_PATTERN = re.compile(r"[a-z](?:[-a-z0-9/]{0,250}[a-z0-9])?")
SECRET_VERSION_PATTERN = re.compile(r"latest|[1-9][0-9]*")
# The image reference grammar of the OCI distribution spec: a registry host (dot-separated labels, optional
# port), then path components of lowercase letters and digits joined by `.`, `_`, `__` or `-`s. So `..`, a
# leading `.` or `-`, and empty components are refused.
_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
IMAGE_REPOSITORY_PATTERN = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*(?::[0-9]+)?(?:/{_PATH_COMPONENT})+")
IMAGE_TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
IMAGE_DIGEST_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")
# GitHub's own name rules. They matter beyond tidiness: the owner and repository names become API path
# segments and directory names under --git-root, so `../`, `?` or `#` must never get that far.
GITHUB_OWNER_PATTERN = re.compile(r"[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}")
GITHUB_REPO_PATTERN = re.compile(r"(?!\.\.?$)[A-Za-z0-9._-]{1,100}")


def github_owner_problem(value: str) -> Optional[str]:
    if GITHUB_OWNER_PATTERN.fullmatch(value):
        return None
    return "is not a GitHub owner name: 1-39 letters, digits and single inner hyphens"


def github_repo_problem(value: str) -> Optional[str]:
    if GITHUB_REPO_PATTERN.fullmatch(value):
        return None
    return "is not a GitHub repository name: 1-100 letters, digits, '.', '-' or '_', and not '.' or '..'"


# A user-managed service account: <account id>@<project id>.iam.gserviceaccount.com.
SERVICE_ACCOUNT_PATTERN = re.compile(r"([a-z][a-z0-9-]{4,28}[a-z0-9])@([a-z][-a-z0-9]{4,28}[a-z0-9])\.iam\.gserviceaccount\.com")
# A runtime-target selector or scope (`live-u1234`, `HK`, `DEMO_IBKR_PRIMARY`): a name, never free text, since
# the runtime prints it as a notification prefix and files reports under it.
TARGET_NAME_PATTERN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9])?")
# A market code or calendar name as QuantRuntimeSettings writes them (US, HK, XNYS, XHKG).
MARKET_NAME_PATTERN = re.compile(r"[A-Z][A-Z0-9_]{0,15}")
# A value safe to quote back in a message (a platform name, a region); anything else is described, not shown.
QUOTABLE_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,40}")


def check_project_id(value: str) -> str:
    """A GCP project id (the stack's, an import id's); ValueError naming the expected shape otherwise."""
    if not GCP_PROJECT_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} is not a GCP project id (6-30 of a-z, 0-9, -)")
    return value


def check_region(value: str) -> str:
    if not GCP_REGION_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} is not a GCP region such as us-central1")
    if value not in KNOWN_REGIONS:
        raise ValueError(f"{value!r} is not a Cloud Run region (e.g. us-central1, asia-east2); check its spelling")
    return value


def gs_uri_problem(value: str) -> Optional[str]:
    """Why `value` is not a gs://<bucket>/<object> URI (None when it is one)."""
    if not value.startswith("gs://"):
        return "is not a gs:// URI; write gs://<bucket>/<path>"
    bucket, _, name = value[len("gs://") :].partition("/")
    if not GCS_BUCKET_PATTERN.fullmatch(bucket):
        return "does not name a Cloud Storage bucket (ASCII a-z, 0-9, -, _ and .); write gs://<bucket>/<path>"
    if not name.strip("/") or " " in name:
        return "names no object path; write gs://<bucket>/<path>"
    return None


def check_service_name(value: str) -> str:
    if not SERVICE_NAME_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} is not a Cloud Run service name (a-z, 0-9, -; at most 49 characters)")
    return value


# Where a service lives, checked the same way wherever a model names it (the stack, adopt's targets).
ProjectId = Annotated[str, AfterValidator(check_project_id)]
RegionName = Annotated[str, AfterValidator(check_region)]
ServiceName = Annotated[str, AfterValidator(check_service_name)]


class ConfigModel(BaseModel):
    """Base for every config model: unknown keys are errors, keys are camelCase, values are immutable.

    Python code may construct models by field name (`populate_by_name`); config input is validated with
    `by_name=False` (see `release/stack.py`), so a stack file has one spelling per key: `strategy_profile`
    is an unknown key there, not a second way to write `strategyProfile`.
    """

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True, str_strip_whitespace=False)


def release_version(tag: str) -> Version:
    """The version a release tag names (``v0.7.10`` -> ``0.7.10``); raises ValueError for anything else."""
    if not tag.startswith("v"):
        raise ValueError(f"release tag {tag!r} must look like v<version>, e.g. v0.7.10")
    try:
        version = Version(tag[1:])
    except InvalidVersion:
        raise ValueError(f"release tag {tag!r} must look like v<version>, e.g. v0.7.10") from None
    if f"v{version}" != tag:
        raise ValueError(f"release tag {tag!r} is not in canonical form; write it as v{version}")
    return version


class RepositoryNames(ConfigModel):
    """GitHub repository names (under ``githubOwner``) that hold each package, platform and the bundles.

    The package fields are the `repository_key`s of release/packages.py's table."""

    quant_platform_kit: str = "QuantPlatformKit"
    us_equity_strategies: str = "UsEquityStrategies"
    hk_equity_strategies: str = "HkEquityStrategies"
    ibkr: str = "InteractiveBrokersPlatform"
    schwab: str = "CharlesSchwabPlatform"
    longbridge: str = "LongBridgePlatform"
    quant_runtime_settings: str = BUNDLE_REPOSITORY

    @field_validator("*")
    @classmethod
    def _repository_name(cls, value: str) -> str:
        problem = github_repo_problem(value)
        if problem:
            raise ValueError(f"{problem}; write the repository's name as GitHub shows it")
        return value

    def for_platform(self, platform: PlatformId) -> str:
        return str(getattr(self, platform))

    def for_package(self, name: str) -> str:
        return str(getattr(self, BY_NAME[name].repository_key))


# Git object ids are full, lowercase hex: a short one is ambiguous and may name another commit tomorrow.
UPPERCASE_COMMIT_PATTERN = re.compile(r"[0-9a-fA-F]{40}")
SHORT_COMMIT_PATTERN = re.compile(r"[0-9a-fA-F]{4,39}")
# A bundle id becomes a file name (compat/bundles/<id>.toml): no separator, no leading dot.
BUNDLE_ID_PATTERN = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,63}")
RELEASE_REF_FIX = "write a release tag (v<version>, e.g. v0.7.10) or a full 40-hex commit"


def check_release_ref(value: str) -> str:
    """A release ref: a canonical `v<version>` tag or a full lowercase commit; ValueError naming the fix."""
    if COMMIT_PATTERN.fullmatch(value):
        return value
    if not value.strip():
        raise ValueError(f"is empty; {RELEASE_REF_FIX}")
    if UPPERCASE_COMMIT_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r}: write the commit in lowercase ({value.lower()})")
    if SHORT_COMMIT_PATTERN.fullmatch(value) and not value.startswith("v"):
        raise ValueError(f"{value!r} is a short commit, which may name another commit tomorrow; write all 40 hex digits")
    if value.startswith("v") and value[1:2].isdigit():
        release_version(value)  # its own message: not a version, or not in canonical form
        return value
    raise ValueError(f"{value!r} is not a release tag or a full commit (a branch name moves); {RELEASE_REF_FIX}")


def check_package_name(value: str) -> str:
    if value not in BY_NAME:
        raise ValueError(
            f"{value!r} is not a package this project releases (known: {known_names()}); "
            "write its distribution name, or add a row to release/packages.py"
        )
    return value


def check_bundle_id(value: str) -> str:
    if not BUNDLE_ID_PATTERN.fullmatch(value) or ".." in value:
        raise ValueError(f"{value!r} is not a bundle id such as 2026.07.4 (letters, digits, '.', '_', '-')")
    return value


ReleaseRef = Annotated[str, AfterValidator(check_release_ref)]
PackageName = Annotated[str, AfterValidator(check_package_name)]
BundleId = Annotated[str, AfterValidator(check_bundle_id)]
ReleaseForm = Literal["shorthand", "packages", "bundle"]


def ref_kind(ref: str) -> Literal["tag", "commit"]:
    """A validated release ref is a tag or a commit."""
    return "commit" if COMMIT_PATTERN.fullmatch(ref) else "tag"


class ReleaseRefs(ConfigModel):
    """Which ref of each shared package a release installs, in one of three forms:

    - `packages`: distribution name -> release tag or full commit (QPK and UES required, HK optional);
    - the seed's two keys `quantPlatformKit` / `usEquityStrategies` (tags), a shorthand for `packages`;
    - `bundle`: a QSL bundle id, whose refs the gate reads from QuantRuntimeSettings (`packages` is then
      filled once read: `resolved`).
    Mixing forms is bad input.
    """

    packages: dict[PackageName, ReleaseRef] = Field(default_factory=dict, description="distribution name -> tag or full commit")
    bundle: Optional[BundleId] = Field(None, description="QSL bundle id, read from QuantRuntimeSettings compat/bundles/<id>.toml")
    shorthand_qpk: Optional[ReleaseRef] = Field(None, alias="quantPlatformKit", description="QPK release tag (shorthand)")
    shorthand_ues: Optional[ReleaseRef] = Field(None, alias="usEquityStrategies", description="UES release tag (shorthand)")

    @model_validator(mode="before")
    @classmethod
    def _one_form(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        shorthand = [key for key in ("quantPlatformKit", "usEquityStrategies", "shorthand_qpk", "shorthand_ues") if key in data]
        forms = [
            name for name, used in (("packages", "packages" in data), ("bundle", "bundle" in data), ("the two keys", shorthand)) if used
        ]
        if len(forms) > 1:
            raise ValueError(
                f"mixes {' and '.join(forms)}; name the release one way: packages (distribution name -> ref), "
                "a bundle, or quantPlatformKit/usEquityStrategies"
            )
        return data

    @model_validator(mode="after")
    def _complete(self) -> "ReleaseRefs":
        if self.bundle is None and not self.packages and self.shorthand_qpk is None and self.shorthand_ues is None:
            raise ValueError(
                "names no release; set packages (distribution name -> tag or full commit), a bundle, "
                "or quantPlatformKit and usEquityStrategies"
            )
        if self.form == "shorthand":
            missing = [
                alias
                for alias, value in (("quantPlatformKit", self.shorthand_qpk), ("usEquityStrategies", self.shorthand_ues))
                if not value
            ]
            if missing:
                raise ValueError(f"{' and '.join(missing)} missing; the shorthand names both (or use packages)")
        elif self.form == "packages":
            missing = [name for name in REQUIRED_IN_RELEASE if name not in self.packages]
            if missing:
                raise ValueError(f"packages lacks {', '.join(missing)}; every release names {' and '.join(REQUIRED_IN_RELEASE)}")
        return self

    @property
    def form(self) -> ReleaseForm:
        if self.bundle is not None:
            return "bundle"
        return "shorthand" if self.shorthand_qpk is not None or self.shorthand_ues is not None else "packages"

    @property
    def refs(self) -> dict[str, str]:
        """distribution name -> ref; for a bundle, empty until the gate read it (`resolved`)."""
        if self.form == "shorthand":
            return {QPK_PACKAGE: str(self.shorthand_qpk), UES_PACKAGE: str(self.shorthand_ues)}
        return dict(self.packages)

    def ref(self, name: str) -> str:
        """The ref of `name`, or what stands for it before a bundle is read (never a usable ref)."""
        return self.refs.get(name) or f"(bundle {self.bundle})"

    @property
    def quant_platform_kit(self) -> str:
        return self.ref(QPK_PACKAGE)

    @property
    def us_equity_strategies(self) -> str:
        return self.ref(UES_PACKAGE)

    @property
    def qpk_version(self) -> Version:
        """The version of QPK's tag; ValueError when QPK's ref is a commit."""
        return release_version(self.quant_platform_kit)

    @property
    def ues_version(self) -> Version:
        return release_version(self.us_equity_strategies)

    def describe(self) -> str:
        """`QPK v0.7.10, UES v0.7.13` as reports write a release (commits shortened)."""
        refs = self.refs
        text = ", ".join(f"{BY_NAME[name].short} {short_ref(refs[name])}" for name in TRACKED_PACKAGES if name in refs)
        if self.bundle is not None:
            return f"bundle {self.bundle}" + (f" ({text})" if text else "")
        return text


def short_ref(ref: str) -> str:
    """A commit shortened to 7 hex digits for reading; a tag as it is."""
    return ref[:7] if COMMIT_PATTERN.fullmatch(ref) else ref


class ReleaseBundle(ReleaseRefs):
    """The stack's release: its refs (`ReleaseRefs`), and where the repositories live."""

    github_owner: str = Field(DEFAULT_GITHUB_OWNER, description="owner of every repository below")
    repositories: RepositoryNames = Field(default_factory=RepositoryNames)

    @field_validator("github_owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        problem = github_owner_problem(value)
        if problem:
            raise ValueError(f"{problem}; write the owner as GitHub shows it, e.g. {DEFAULT_GITHUB_OWNER}")
        return value

    def with_refs(self, refs: ReleaseRefs) -> "ReleaseBundle":
        """This release with a service's own refs (`services.<key>.release`) in place of the stack's."""
        return self.model_copy(
            update={
                "packages": refs.packages,
                "bundle": refs.bundle,
                "shorthand_qpk": refs.shorthand_qpk,
                "shorthand_ues": refs.shorthand_ues,
            }
        )

    def resolved(self, refs: dict[str, str]) -> "ReleaseBundle":
        """A bundle release once the gate read the bundle: its packages filled, its id kept."""
        return self.model_copy(update={"packages": dict(refs)})


class SnapshotPaths(ConfigModel):
    """Input-mode paths: a snapshot-backed profile's artifacts, and the strategy config path of any profile
    that reads one (a direct-runtime `env_only` profile too); which are required depends on the proved
    profile facts."""

    feature_snapshot_path: Optional[str] = None
    manifest_path: Optional[str] = None
    strategy_config_path: Optional[str] = None
    reconciliation_output_path: Optional[str] = None

    @field_validator("feature_snapshot_path", "manifest_path", "reconciliation_output_path")
    @classmethod
    def _gcs_uri(cls, value: Optional[str]) -> Optional[str]:
        problem = None if value is None else gs_uri_problem(value)
        if problem is not None:
            # Quoted only when plain ASCII: a look-alike quoted back would look right to the reader.
            shown = repr(value) if value is not None and value.isascii() else "this value"
            raise ValueError(f"{shown} {problem}")
        return value

    @field_validator("strategy_config_path")
    @classmethod
    def _non_empty(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not value.strip():
            raise ValueError("is empty; remove the key to use the profile's bundled config")
        return value


class SecretRef(ConfigModel):
    """A Secret Manager reference: the env var reads ``secret`` at ``version``; never a literal value."""

    secret: str
    version: str = "latest"

    @classmethod
    def parse(cls, text: str) -> "SecretRef":
        """`<secret>[:<version>]`, the string form; the mapping form is checked by the same `_checked`."""
        secret, _, version = text.partition(":")
        try:
            return cls(secret=secret, version=version or "latest")
        except ValidationError as error:
            raise ValueError(_secret_ref_problem(error)) from None

    @model_validator(mode="after")
    def _checked(self) -> "SecretRef":
        # Never echo either part: a credential pasted here (`123456789:AAH...` splits at its colon) must not
        # reach a log; say what shape is expected instead.
        if not (SECRET_ID_PATTERN.fullmatch(self.secret) or LONG_SECRET_PATTERN.fullmatch(self.secret)):
            raise ValueError(
                "is not a Secret Manager secret name (letters, digits, - and _, or projects/<project>/secrets/<name>); "
                "write <secret>[:<version>]"
            )
        if not SECRET_VERSION_PATTERN.fullmatch(self.version):
            raise ValueError("has a version that is neither latest nor a version number; write <secret>[:<version>]")
        return self

    def __str__(self) -> str:
        return f"{self.secret}:{self.version}"


class SchedulerSpec(ConfigModel):
    """The service's Cloud Scheduler job; a field left out is held at the live job's value (defaults for a
    new job: docs/platform-facts.md §2). Rules that need the service (account vs project) live in
    `release/cutover/scheduling.py`."""

    schedule: Optional[str] = Field(None, description="unix-cron, e.g. 45 15 * * 1-5")
    time_zone: Optional[str] = Field(None, description="IANA time zone, e.g. America/New_York")
    paused: Optional[StrictBool] = Field(None, description="true pauses the job; default false for a new job")
    attempt_deadline: Optional[str] = Field(None, description="e.g. 330s (15s to 1800s)")
    service_account: Optional[str] = Field(None, description="OIDC identity; default {platform}-platform-scheduler@<project>")


class PrecheckWindow(ConfigModel):
    """The runtime target's `execution_windows.precheck` (QuantRuntimeSettings schema)."""

    enabled: Optional[StrictBool] = None
    offset_minutes: Optional[StrictInt] = Field(None, ge=0, le=1440)
    mode: Optional[Literal["notify_only", "dry_run"]] = None


class ExecutionWindow(ConfigModel):
    """The runtime target's `execution_windows.execution`; its mode must agree with the target's."""

    enabled: Optional[StrictBool] = None
    offset_minutes: Optional[StrictInt] = Field(None, ge=0, le=1440)
    mode: Optional[Literal["live", "paper", "dry_run"]] = None


class ExecutionWindows(ConfigModel):
    precheck: Optional[PrecheckWindow] = None
    execution: Optional[ExecutionWindow] = None


class VpcAccessConfig(ConfigModel):
    """Direct VPC egress (`network`/`subnetwork`/`tags`) or a VPC connector, and the egress mode (gcloud words)."""

    network: Optional[str] = None
    subnetwork: Optional[str] = None
    tags: tuple[str, ...] = ()
    connector: Optional[str] = None
    egress: Literal["private-ranges-only", "all-traffic"] = Field(description="private-ranges-only | all-traffic")

    @field_validator("network", "subnetwork", "connector")
    @classmethod
    def _name(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not NETWORK_NAME_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a VPC network, subnetwork or connector name")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> "VpcAccessConfig":
        direct = self.network is not None or self.subnetwork is not None
        if direct and self.connector is not None:
            raise ValueError("set either network/subnetwork (Direct VPC egress) or connector, not both")
        if not direct and self.connector is None:
            raise ValueError("set network and subnetwork (Direct VPC egress) or connector")
        if self.tags and not direct:
            raise ValueError("tags need Direct VPC egress (network/subnetwork)")
        return self


class ScalingConfig(ConfigModel):
    min_instances: Optional[StrictInt] = Field(None, ge=0, le=1000)
    max_instances: Optional[StrictInt] = Field(None, ge=1, le=1000)

    @model_validator(mode="after")
    def _order(self) -> "ScalingConfig":
        if self.min_instances is not None and self.max_instances is not None and self.min_instances > self.max_instances:
            raise ValueError(f"minInstances {self.min_instances} is above maxInstances {self.max_instances}")
        return self


class ResourcesConfig(ConfigModel):
    cpu: Optional[str] = Field(None, description="CPU limit: 1, 2, 4, 1000m ...")
    memory: Optional[str] = Field(None, description="memory limit: 512Mi, 1Gi ...")
    cpu_idle: Optional[StrictBool] = Field(None, description="true: CPU only during requests; false: always allocated")
    startup_cpu_boost: Optional[StrictBool] = None

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not CPU_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a CPU limit; write 1, 2, 4 or e.g. 1000m (quote it)")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not MEMORY_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a memory limit; write e.g. 512Mi or 1Gi")
        return value


class ServiceSpec(ConfigModel):
    """One Cloud Run strategy service as the operator declares it; the key is the stack config map key."""

    platform: PlatformId = Field(description="ibkr | schwab | longbridge")
    project: ProjectId = Field(description="GCP project id that owns the service")
    region: RegionName = Field(description="Cloud Run region")
    service_name: ServiceName = Field(description="Cloud Run service name; never derived from a strategy")
    commit: str = Field(description="full 40-hex platform repo commit the image was built from")
    image: str = Field(description="<registry path>:<commit> or <registry path>@sha256:<digest>")
    strategy_profile: str = Field(description="canonical UES profile to run")
    dry_run_only: Union[StrictBool, Literal["keep"]] = Field(
        "keep", description="true | false | keep (the live value; a new service starts dry)"
    )
    # The runtime target (RUNTIME_TARGET_JSON, QuantRuntimeSettings `schemas/runtime-target.schema.json`):
    # every field left out is derived as the platforms derive it (components/runtime_target.py).
    enabled: StrictBool = Field(True, description="false: RUNTIME_TARGET_ENABLED=false and the service's scheduler job paused")
    execution_mode: Optional[ExecutionMode] = Field(None, description="live | paper; derived from dryRunOnly when absent")
    deployment_selector: Optional[str] = Field(None, description="default: the target name (IBKR account group, LongBridge region)")
    account_selector: Optional[tuple[str, ...]] = Field(None, description="non-empty list of account names; default [accountScope]")
    account_scope: Optional[str] = Field(None, description="default: deploymentSelector")
    market: Optional[str] = Field(None, description="with marketCalendar and marketTimezone, all three or none")
    market_calendar: Optional[str] = None
    market_timezone: Optional[str] = None
    execution_windows: Optional[ExecutionWindows] = None
    env: dict[str, str] = Field(default_factory=dict, description="plain env the program does not own")
    secrets: dict[str, SecretRef] = Field(default_factory=dict, description="env name -> secret[:version]")
    account_region: Optional[AccountRegion] = Field(None, description="LongBridge only: HK | SG")
    longport_secret_name: Optional[str] = Field(None, description="LongBridge only: the region's token secret")
    service_account: Optional[str] = Field(None, description="runtime service account; held at the live value when absent")
    service_account_project: Optional[ProjectId] = Field(
        None, description="the project of serviceAccount when it is not `project` (says so explicitly)"
    )
    snapshot: Optional[SnapshotPaths] = Field(None, description="input-mode paths of a snapshot-backed profile")
    release: Optional[ReleaseRefs] = Field(None, description="this service's own release refs, in place of the stack's (same forms)")
    scheduler: Optional[SchedulerSpec] = Field(None, description="the scheduler job that calls <service url>/run")
    # Cloud Run settings (components/ownership.py): absent = held at the live value; a new service starts
    # from docs/platform-facts.md §2.
    ingress: Optional[Literal["all", "internal", "internal-and-cloud-load-balancing"]] = None
    vpc_access: Optional[VpcAccessConfig] = None
    scaling: Optional[ScalingConfig] = None
    resources: Optional[ResourcesConfig] = None
    concurrency: Optional[StrictInt] = Field(None, ge=1, le=1000, description="max concurrent requests per instance")
    timeout_seconds: Optional[StrictInt] = Field(None, ge=1, le=3600, description="request timeout in seconds")

    @field_validator("dry_run_only", mode="before")
    @classmethod
    def _dry_run(cls, value: object) -> object:
        # One message instead of pydantic's one-per-union-member; a string "true" is refused because YAML
        # quoting mistakes must not decide whether a live service trades.
        if value is True or value is False or value == "keep":
            return value
        raise ValueError(f"{value!r} is not allowed; use true, false or keep (keep holds the live value)")

    @field_validator("execution_mode", mode="before")
    @classmethod
    def _execution_mode(cls, value: object) -> object:
        if value == "dry_run":
            # The schema lists it, but the runtime's target reader (QPK `resolve_runtime_target_from_env`)
            # accepts only `paper` beside dry_run_only: true and refuses to start on `dry_run`.
            raise ValueError(
                "dry_run is in the schema, but the platforms' runtime refuses to start on it (it reads paper for a "
                "dry-run target); write executionMode: paper with dryRunOnly: true"
            )
        if value is None or value in ("live", "paper"):
            return value
        shown = repr(value) if isinstance(value, str) and QUOTABLE_PATTERN.fullmatch(value) else "this value"
        raise ValueError(f"{shown} is not an execution mode; use live or paper")

    @field_validator("deployment_selector", "account_scope")
    @classmethod
    def _target_name(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not TARGET_NAME_PATTERN.fullmatch(value):
            raise ValueError("is not a name: 1-64 letters, digits, '.', '-' or '_', starting and ending with a letter or digit")
        return value

    @field_validator("account_selector", mode="before")
    @classmethod
    def _account_selector(cls, value: object) -> object:
        fix = "write a non-empty list of account names, e.g. [live-u1234]"
        if value is None:
            return value
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"is not a list; {fix}")
        if not value:
            raise ValueError(f"is empty; {fix}")
        seen: set[str] = set()
        for index, item in enumerate(value):
            if not isinstance(item, str) or not TARGET_NAME_PATTERN.fullmatch(item):
                raise ValueError(f"item {index} is not an account name (1-64 letters, digits, '.', '-' or '_'); {fix}")
            if item in seen:
                raise ValueError(f"names {item} twice; list each account once")
            seen.add(item)
        return tuple(value)

    @field_validator("market", "market_calendar")
    @classmethod
    def _market_name(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not MARKET_NAME_PATTERN.fullmatch(value):
            raise ValueError("is not a market or calendar code: 1-16 uppercase letters, digits or '_', e.g. US, HK, XNYS, XHKG")
        return value

    @field_validator("commit")
    @classmethod
    def _commit(cls, value: str) -> str:
        if not COMMIT_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a full commit; write all 40 lowercase hex digits")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        repository, reference = split_image(value)
        if not IMAGE_REPOSITORY_PATTERN.fullmatch(repository):
            raise ValueError(f"{value!r} is not an image reference; write <registry>/<path>:<commit>")
        if reference is None:
            raise ValueError(f"{value!r} has no tag or digest; write {repository}:<commit>")
        if not (IMAGE_DIGEST_PATTERN.fullmatch(reference) or IMAGE_TAG_PATTERN.fullmatch(reference)):
            raise ValueError(f"{value!r} has a malformed tag or digest")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(name for name in value if not ENV_NAME_PATTERN.fullmatch(name))
        if bad:
            raise ValueError(f"{', '.join(bad)}: env names are UPPER_SNAKE_CASE")
        return value

    @field_validator("secrets", mode="before")
    @classmethod
    def _secret_refs(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        bad = sorted(str(name) for name in value if not ENV_NAME_PATTERN.fullmatch(str(name)))
        if bad:
            raise ValueError(f"{', '.join(bad)}: env names are UPPER_SNAKE_CASE")
        refs, errors = {}, []
        for name, ref in value.items():
            try:
                refs[name] = _secret_ref(ref)
            except (ValueError, ValidationError) as error:
                errors.append(f"{name} {_secret_ref_problem(error)}")
        if errors:
            raise ValueError("; ".join(errors))
        return refs

    @field_validator("service_account")
    @classmethod
    def _service_account(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not SERVICE_ACCOUNT_PATTERN.fullmatch(value):
            raise ValueError(
                "is not a service account email; write <account>@<project>.iam.gserviceaccount.com "
                "(or remove it to use the platform's runtime account)"
            )
        return value

    @model_validator(mode="after")
    def _service_account_in_project(self) -> "ServiceSpec":
        """A runtime identity from another project runs the trading service with that project's grants: allowed
        only when the stack says so twice (serviceAccountProject names the account's project)."""
        if self.service_account is not None:
            match = SERVICE_ACCOUNT_PATTERN.fullmatch(self.service_account)
            account_project = match.group(2) if match else None
            allowed = self.service_account_project or self.project
            if account_project != allowed:
                raise ValueError(
                    f"serviceAccount belongs to project {account_project}, not {allowed}; use an account of "
                    f"{allowed}, or set serviceAccountProject: {account_project} to use another project's account"
                )
        elif self.service_account_project is not None:
            raise ValueError("serviceAccountProject is set without serviceAccount; remove it or set serviceAccount")
        return self

    @field_validator("longport_secret_name")
    @classmethod
    def _longport_secret(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not SECRET_ID_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a Secret Manager secret name")
        return value

    @property
    def image_tag(self) -> Optional[str]:
        reference = split_image(self.image)[1]
        return None if reference is None or reference.startswith("sha256:") else reference


def _secret_ref(ref: object) -> "SecretRef":
    """Either form of a `secrets` entry, through the same model and checks."""
    if isinstance(ref, str):
        return SecretRef.parse(ref)
    if isinstance(ref, dict):
        version = ref.get("version", "latest")
        # `version: 3` is a natural way to write a version in YAML; a bool is not a version.
        if isinstance(version, int) and not isinstance(version, bool):
            ref = {**ref, "version": str(version)}
        return SecretRef.model_validate(ref, by_alias=True, by_name=False)
    raise ValueError("is neither <secret>[:<version>] nor {secret: ..., version: ...}")


def _secret_ref_problem(error: Exception) -> str:
    """The message of a refused secret ref, without pydantic's echo of the input."""
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        if first["type"] == "extra_forbidden":
            return "has an unknown key; a secret ref is {secret: <name>, version: <version>}"
        if first["type"] in ("missing", "string_type"):
            return "needs secret: <name> (a string) and an optional version; write {secret: <name>, version: <version>}"
        return first["msg"].removeprefix("Value error, ")
    return str(error)


class StackConfig(ConfigModel):
    """Everything one stack declares: the release bundle and the services keyed by service key."""

    release: ReleaseBundle
    services: dict[str, ServiceSpec]

    def release_for(self, key: str) -> ReleaseBundle:
        """The release service `key` installs: its own `release` when it sets one, else the stack's."""
        own = self.services[key].release
        return self.release if own is None else self.release.with_refs(own)

    def bundles(self) -> list[str]:
        """Every bundle id the stack's release or a service's names, in order of first use."""
        ids = [self.release.bundle] + [spec.release.bundle for spec in self.services.values() if spec.release is not None]
        return list(dict.fromkeys(bundle for bundle in ids if bundle is not None))

    def with_bundles(self, refs_by_bundle: Mapping[str, Mapping[str, str]]) -> "StackConfig":
        """The config once the gate read its bundles (bundle id -> package -> ref): every bundle release
        gets its packages, keeping its id. Releases of a bundle not given stay as they are."""

        def fill(refs: ReleaseRefs) -> ReleaseRefs:
            if refs.bundle is None or refs.bundle not in refs_by_bundle:
                return refs
            return refs.model_copy(update={"packages": dict(refs_by_bundle[refs.bundle])})

        release = fill(self.release)
        assert isinstance(release, ReleaseBundle)
        services = {
            key: spec if spec.release is None else spec.model_copy(update={"release": fill(spec.release)})
            for key, spec in self.services.items()
        }
        return self.model_copy(update={"release": release, "services": services})


def split_image(image: str) -> tuple[str, Optional[str]]:
    """Split an image reference into repository and tag/digest (None when it has neither)."""
    if "@" in image:
        repository, _, digest = image.partition("@")
        return repository, digest
    last_slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > last_slash:
        return image[:colon], image[colon + 1 :]
    return image, None


class ConfigProblem(BaseModel):
    """One thing wrong with a stack config: where (``services.schwab.strategyProfile``) and what to do."""

    model_config = ConfigDict(frozen=True)

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(ValueError):
    """A stack config that must not reach a live service; carries every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem], source: str = "stack config") -> None:
        self.problems = problems
        self.source = source
        super().__init__(self.report())

    def report(self) -> str:
        # The source is a path the operator typed (or a file name in a directory they listed): escaped too.
        lines = [f"{escape_controls(self.source)} is invalid ({len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}):"]
        # Keys and values quoted in problems come from the operator's file: escape anything that could
        # forge a line or drive the terminal.
        lines += [f"  - {escape_controls(str(problem))}" for problem in self.problems]
        return "\n".join(lines)
