"""Every input of `gcp.cloudrunv2.Service` and its rule: owned, configurable, held, refused or not sent.

In the provider an absent optional input is a removal (or its schema default), so a field the program
neither owns nor holds would be wiped by the first `pulumi up`, while `plan` says in-sync. This table is
the one place that says what happens to each input; `tests/test_service_fields.py` walks the installed
SDK's args classes (`ServiceArgs`, `ServiceTemplateArgs`, `ServiceTemplateContainerArgs`, ...) and fails
on a field with no rule, so a provider upgrade cannot add a field that is silently removed. The README's
field table is checked against it too.

Paths are the SDK's snake_case argument names joined by dots (`template.containers.volume_mounts.sub_path`).
A `refused` or `not-sent` rule covers everything under its path (a block refused when set is refused
whatever it holds; a block never sent is kept whole by the provider); `owned`, `configurable` and `held`
blocks list each field under them, since holding a block means registering each of its fields.

Pure data and a reader of the `getService` result shape; no Pulumi import.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Optional, Sequence

from pydantic.alias_generators import to_camel

FieldRule = Literal["owned", "configurable", "held", "refused", "not-sent"]

RULE_MEANING: Mapping[FieldRule, str] = {
    "owned": "the program sets it (from the stack config, the release and the phase)",
    "configurable": "held at its live value unless the stack config sets it; a new service gets the contract's default",
    "held": "registered exactly as the live service has it (verbatim; compared normalised, never rewritten)",
    "refused": "a live service that sets it is refused before anything is registered: the program cannot hold it",
    "not-sent": "never registered: the provider keeps the live value (optional and computed, create-only or output-only)",
}
# Rules that may cover a whole block, fields added to it later included.
INHERITED_RULES: frozenset[FieldRule] = frozenset({"refused", "not-sent"})

FIELD_RULES: Mapping[str, tuple[FieldRule, str]] = {
    # --- the service -------------------------------------------------------------------------------
    "name": ("owned", "`serviceName`"),
    "project": ("owned", "`project` (the id, never the number)"),
    "location": ("owned", "`region`"),
    "deletion_protection": ("owned", "always true"),
    "template": ("owned", "the revision template (below)"),
    "traffics": ("owned", "all to the latest ready revision; a blocked service's declared split as live"),
    "traffics.type": ("owned", "latest or a named revision"),
    "traffics.percent": ("owned", "as above"),
    "traffics.revision": ("owned", "as above"),
    "traffics.tag": ("owned", "a blocked service keeps its live tags"),
    "labels": ("held", "user labels; `commit-sha` is kept in step with the template label where live has one"),
    "annotations": (
        "held",
        "user annotations (the v2 API rejects `run.googleapis.com/`, `cloud.googleapis.com/`, `serving.knative.dev/`, "
        "`autoscaling.knative.dev/`, never registered); `client.knative.dev/user-image` follows the image where live has it",
    ),
    "description": ("held", "verbatim"),
    "iap_enabled": ("held", "verbatim"),
    "ingress": ("configurable", "`ingress`"),
    "client": ("not-sent", "ignore_changes: gcloud rewrites it on every deploy"),
    "client_version": ("not-sent", "ignore_changes: gcloud rewrites it on every deploy"),
    "launch_stage": ("not-sent", "optional and computed: the provider keeps the live stage"),
    "scaling": ("not-sent", "service-level scaling, optional and computed: the provider keeps it (revision scaling is `template.scaling`)"),
    "deletion_policy": ("not-sent", "a provider-only setting (default DELETE); the resource is protected"),
    "tags": ("not-sent", "Resource Manager tags are create-only and never read back"),
    "binary_authorization": ("refused", "Binary Authorization"),
    "build_config": ("refused", "a source or function build configuration"),
    "custom_audiences": ("refused", "custom audiences"),
    "default_uri_disabled": ("refused", "the default URL disabled"),
    "functional_type": ("refused", "a functional type (beta)"),
    "invoker_iam_disabled": ("refused", "invoker IAM disabled"),
    "multi_region_settings": ("refused", "a multi-region service"),
    "ssh_enabled": ("refused", "SSH access"),
    # --- the revision template ---------------------------------------------------------------------
    "template.labels": ("held", "user labels; `commit-sha` owned (the image's commit)"),
    "template.annotations": (
        "held",
        "user annotations, `client.knative.dev/` and `features.knative.dev/` included; the release record "
        "`us-equity-cutover/release` owned; `client.knative.dev/user-image` follows the image where live has it",
    ),
    "template.revision": ("held", "while the template does not change (blocked, in-sync); not sent by an update that makes a revision"),
    "template.containers": ("owned", "exactly one container; a live service with sidecars is refused"),
    "template.service_account": ("configurable", "`serviceAccount`"),
    "template.timeout": ("configurable", "`timeoutSeconds`"),
    "template.max_instance_request_concurrency": ("configurable", "`concurrency`"),
    "template.scaling": ("configurable", "`scaling`"),
    "template.scaling.min_instance_count": ("configurable", "`scaling.minInstances`"),
    "template.scaling.max_instance_count": ("configurable", "`scaling.maxInstances`"),
    "template.scaling.concurrency_utilization": ("refused", "utilization-based scaling"),
    "template.scaling.cpu_utilization": ("refused", "utilization-based scaling"),
    "template.vpc_access": ("configurable", "`vpcAccess`"),
    "template.vpc_access.connector": ("configurable", "`vpcAccess.connector`"),
    "template.vpc_access.egress": ("configurable", "`vpcAccess.egress`"),
    "template.vpc_access.network_interfaces": ("configurable", "`vpcAccess.network`/`subnetwork`/`tags`"),
    "template.vpc_access.network_interfaces.network": ("configurable", "`vpcAccess.network`"),
    "template.vpc_access.network_interfaces.subnetwork": ("configurable", "`vpcAccess.subnetwork`"),
    "template.vpc_access.network_interfaces.tags": ("configurable", "`vpcAccess.tags`"),
    "template.execution_environment": ("held", "verbatim"),
    "template.session_affinity": ("held", "verbatim"),
    "template.health_check_disabled": ("held", "verbatim"),
    "template.volumes": ("held", "secret and in-memory volumes"),
    "template.volumes.name": ("held", "verbatim"),
    "template.volumes.secret": ("held", "a Secret Manager secret as files"),
    "template.volumes.secret.secret": ("held", "verbatim"),
    "template.volumes.secret.default_mode": ("held", "verbatim"),
    "template.volumes.secret.items": ("held", "verbatim"),
    "template.volumes.secret.items.path": ("held", "verbatim"),
    "template.volumes.secret.items.mode": ("held", "verbatim"),
    "template.volumes.secret.items.version": ("held", "verbatim"),
    "template.volumes.empty_dir": ("held", "a scratch directory"),
    "template.volumes.empty_dir.medium": ("held", "verbatim"),
    "template.volumes.empty_dir.size_limit": ("held", "verbatim"),
    "template.volumes.gcs": ("refused", "a Cloud Storage volume"),
    "template.volumes.nfs": ("refused", "an NFS volume"),
    "template.volumes.cloud_sql_instance": ("refused", "a Cloud SQL volume"),
    "template.encryption_key": ("refused", "a customer-managed encryption key"),
    "template.node_selector": ("refused", "a node selector (GPU)"),
    "template.gpu_zonal_redundancy_disabled": ("refused", "GPU zonal redundancy disabled"),
    "template.sandboxes": ("refused", "sandboxes"),
    "template.service_mesh": ("refused", "a service mesh"),
    "template.workload_identity_config": ("refused", "a workload identity configuration (beta)"),
    # --- the container ------------------------------------------------------------------------------
    "template.containers.image": ("owned", "the configured image, by digest"),
    "template.containers.envs": ("owned", "the derived env plus the config's `env` and `secrets`"),
    "template.containers.envs.name": ("owned", "as above"),
    "template.containers.envs.value": ("owned", "as above"),
    "template.containers.envs.value_source": ("owned", "as above"),
    "template.containers.envs.value_source.secret_key_ref": ("owned", "as above"),
    "template.containers.envs.value_source.secret_key_ref.secret": ("owned", "as above"),
    "template.containers.envs.value_source.secret_key_ref.version": ("owned", "as above"),
    "template.containers.name": ("held", "verbatim (gcloud names the container)"),
    "template.containers.commands": ("held", "verbatim"),
    "template.containers.args": ("held", "verbatim"),
    "template.containers.depends_ons": ("held", "verbatim"),
    "template.containers.base_image_uri": ("held", "verbatim (automatic base image updates)"),
    "template.containers.ports": ("held", "verbatim"),
    "template.containers.ports.container_port": ("held", "verbatim"),
    "template.containers.ports.name": ("held", "verbatim"),
    "template.containers.resources": ("configurable", "`resources`"),
    "template.containers.resources.limits": (
        "configurable",
        "`resources.cpu`/`memory`, verbatim (`1000m` stays `1000m`); any other key is refused",
    ),
    "template.containers.resources.cpu_idle": ("configurable", "`resources.cpuIdle`"),
    "template.containers.resources.startup_cpu_boost": ("configurable", "`resources.startupCpuBoost`"),
    "template.containers.volume_mounts": ("held", "verbatim"),
    "template.containers.volume_mounts.name": ("held", "verbatim"),
    "template.containers.volume_mounts.mount_path": ("held", "verbatim"),
    "template.containers.volume_mounts.sub_path": ("held", "verbatim"),
    "template.containers.working_dir": ("refused", "a container working directory"),
    "template.containers.sandbox_launcher": ("refused", "a sandbox launcher"),
    "template.containers.source_code": ("refused", "a source-code container"),
    "template.containers.build_infos": ("not-sent", "output only"),
}


def _probe_rules(kind: str, fields: Sequence[str], sub: Mapping[str, Sequence[str]]) -> dict[str, tuple[FieldRule, str]]:
    base = f"template.containers.{kind}"
    rules: dict[str, tuple[FieldRule, str]] = {base: ("held", "verbatim")}
    rules.update({f"{base}.{name}": ("held", "verbatim") for name in fields})
    for block, names in sub.items():
        rules[f"{base}.{block}"] = ("held", "verbatim")
        rules.update({f"{base}.{block}.{name}": ("held", "verbatim") for name in names})
    return rules


_TIMING = ("initial_delay_seconds", "period_seconds", "timeout_seconds", "failure_threshold")
FIELD_RULES = {
    **FIELD_RULES,
    **_probe_rules("liveness_probe", _TIMING, {"http_get": ("path", "port"), "tcp_socket": ("port",), "grpc": ("port", "service")}),
    **_probe_rules("startup_probe", _TIMING, {"http_get": ("path", "port"), "tcp_socket": ("port",), "grpc": ("port", "service")}),
    **_probe_rules(
        "readiness_probe",
        ("period_seconds", "timeout_seconds", "failure_threshold", "success_threshold"),
        {"http_get": ("path", "port"), "grpc": ("port", "service")},
    ),
    "template.containers.liveness_probe.http_get.http_headers": ("refused", "probe HTTP headers"),
    "template.containers.startup_probe.http_get.http_headers": ("refused", "probe HTTP headers"),
}

# The `getService` result lists every nested block (the data source drops MaxItems), under the bridge's
# plural of the block's name; a plain field keeps its name (a volume's `secret` block is `secrets`, the
# `secret` field of a secret reference is `secret`).
LISTED_AS: Mapping[str, str] = {
    "template": "templates",
    "binary_authorization": "binary_authorizations",
    "build_config": "build_configs",
    "multi_region_settings": "multi_region_settings",
    "scaling": "scalings",
    "vpc_access": "vpc_accesses",
    "node_selector": "node_selectors",
    "service_mesh": "service_meshes",
    "workload_identity_config": "workload_identity_configs",
    "liveness_probe": "liveness_probes",
    "startup_probe": "startup_probes",
    "readiness_probe": "readiness_probes",
    "http_get": "http_gets",
    "tcp_socket": "tcp_sockets",
    "grpc": "grpcs",
    "value_source": "value_sources",
    "secret_key_ref": "secret_key_reves",
    "source_code": "source_codes",
    "cloud_storage_source": "cloud_storage_sources",
    "empty_dir": "empty_dirs",
    "cloud_sql_instance": "cloud_sql_instances",
    "gcs": "gcs",
    "nfs": "nfs",
    "traffics": "traffics",
}
LISTED_AS_AT: Mapping[str, str] = {"template.volumes.secret": "secrets"}


def listed_name(path: str) -> str:
    """The name in the `getService` result of the argument at `path` (its last part, listed if a block)."""
    return LISTED_AS_AT.get(path) or LISTED_AS.get(path.rsplit(".", 1)[-1], path.rsplit(".", 1)[-1])


def rule_for(path: str) -> Optional[tuple[FieldRule, str]]:
    """The rule of a field: its own, else the refused or not-sent block it is in; None when it has none."""
    if path in FIELD_RULES:
        return FIELD_RULES[path]
    parts = path.split(".")
    for end in range(len(parts) - 1, 0, -1):
        rule = FIELD_RULES.get(".".join(parts[:end]))
        if rule is not None:
            return rule if rule[0] in INHERITED_RULES else None
    return None


def _read(obj: Any, name: str) -> Any:
    # The invoke result: SDK objects (attributes), or the engine's camelCase maps under mocks.
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name, obj.get(to_camel(name)))
    return getattr(obj, name, None)


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return list(value)
    return [value]


def is_set(value: Any) -> bool:
    """Whether a read value sets anything: the provider reads an unset field as its zero value (`""`, 0,
    false, an empty list or map) and an unset enum as `..._UNSPECIFIED`."""
    if value is None or value is False or value == "" or (isinstance(value, str) and value.endswith("_UNSPECIFIED")):
        return False
    if isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, Mapping):
        return any(is_set(item) for item in value.values())
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return any(is_set(item) for item in value)
    return True


def refused_in(result: Any) -> list[tuple[str, str]]:
    """(path, what) of every refused field a `getService` result sets, in table order."""
    found = []
    for path, (rule, what) in FIELD_RULES.items():
        if rule != "refused":
            continue
        values = [result]
        parts = path.split(".")
        for end in range(1, len(parts) + 1):
            name = listed_name(".".join(parts[:end]))
            values = [item for value in values for item in _listed(_read(value, name))]
        if any(is_set(value) for value in values):
            found.append((path, what))
    return found


def readme_rows() -> list[str]:
    """The README's field table, one row per field with its own rule (inherited ones are covered by their block)."""
    return [f"| `{path}` | {rule} | {why} |" for path, (rule, why) in sorted(FIELD_RULES.items())]
