"""Stack config validation: every bad input fails with one problem naming service key, field and fix."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from release.config import ConfigError, ConfigProblem
from release.stack import load_stack_file, parse_stack, raise_profile_problems
from tests.fixtures.profile_sources import profile_facts
from tests.fixtures.projects import SEED_STACK_FILE

PROD_FILE = SEED_STACK_FILE
PROD_RAW = yaml.safe_load(PROD_FILE.read_text(encoding="utf-8"))["config"]
RELEASE_RAW = PROD_RAW["us-equity-cutover:release"]
SERVICES_RAW = PROD_RAW["us-equity-cutover:services"]

IBKR_COMMIT = SERVICES_RAW["ibkr"]["commit"]
OTHER_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def problems_for(mutate: Callable[[dict, dict], None]) -> list[ConfigProblem]:
    """Both validation stages: the structure at load, then the rules that need the proved profile facts."""
    release, services = copy.deepcopy(RELEASE_RAW), copy.deepcopy(SERVICES_RAW)
    mutate(release, services)
    with pytest.raises(ConfigError) as caught:
        config = parse_stack(release, services)
        raise_profile_problems(config, profile_facts(config))
    return caught.value.problems


def setter(key: str, **fields: Any) -> Callable[[dict, dict], None]:
    def mutate(_release: dict, services: dict) -> None:
        services[key].update(fields)

    return mutate


def deleter(key: str, *names: str) -> Callable[[dict, dict], None]:
    def mutate(_release: dict, services: dict) -> None:
        for name in names:
            del services[key][name]

    return mutate


def in_map(key: str, map_name: str, **entries: Any) -> Callable[[dict, dict], None]:
    def mutate(_release: dict, services: dict) -> None:
        services[key].setdefault(map_name, {}).update(entries)

    return mutate


def in_snapshot(key: str, **paths: Any) -> Callable[[dict, dict], None]:
    def mutate(_release: dict, services: dict) -> None:
        snapshot = services[key].setdefault("snapshot", {})
        for name, value in paths.items():
            if value is None:
                snapshot.pop(name, None)
            else:
                snapshot[name] = value

    return mutate


def in_release(**fields: str) -> Callable[[dict, dict], None]:
    def mutate(release: dict, _services: dict) -> None:
        release.update(fields)

    return mutate


GS = "gs://qsl-runtime-logs-shared/strategy-artifacts/us_equity/x/"

# (case id, mutation, the one expected problem path, words its message must contain)
ONE_PROBLEM_CASES = [
    ("unknown platform", setter("ibkr", platform="ibkrr"), "services.ibkr.platform", ["'ibkrr'", "ibkr", "schwab", "longbridge"]),
    (
        "snapshot profile without manifest",
        in_snapshot("longbridge-hk", manifestPath=None),
        "services.longbridge-hk.snapshot.manifestPath",
        ["requires a snapshot manifest", "tech_pullback_cash_buffer.feature_snapshot.v1", "gs://"],
    ),
    (
        "snapshot profile without snapshot",
        in_snapshot("longbridge-hk", featureSnapshotPath=None),
        "services.longbridge-hk.snapshot.featureSnapshotPath",
        ["snapshot-backed", "set the gs:// path"],
    ),
    (
        "snapshot path on direct profile",
        in_snapshot("longbridge-sg", featureSnapshotPath=GS + "a.csv"),
        "services.longbridge-sg.snapshot.featureSnapshotPath",
        ["tqqq_growth_income is a direct-runtime profile", "remove it"],
    ),
    (
        "config path on direct profile",
        in_snapshot("ibkr", strategyConfigPath=GS + "c.json"),
        "services.ibkr.snapshot.strategyConfigPath",
        ["reads no strategy config path", "remove it"],
    ),
    (
        "reconciliation off ibkr",
        in_snapshot("longbridge-hk", reconciliationOutputPath=GS + "recon/"),
        "services.longbridge-hk.snapshot.reconciliationOutputPath",
        ["only IBKR", "remove it"],
    ),
    (
        "snapshot not gs://",
        in_snapshot("longbridge-hk", featureSnapshotPath="https://storage.googleapis.com/b/a.csv"),
        "services.longbridge-hk.snapshot.featureSnapshotPath",
        ["not a gs:// URI", "gs://<bucket>/<path>"],
    ),
    (
        "manifest not gs://",
        in_snapshot("longbridge-hk", manifestPath="/tmp/a.manifest.json"),
        "services.longbridge-hk.snapshot.manifestPath",
        ["not a gs:// URI"],
    ),
    (
        "longbridge without accountRegion",
        deleter("longbridge-sg", "accountRegion"),
        "services.longbridge-sg.accountRegion",
        ["required for longbridge", "HK (asia-east2)", "SG (asia-southeast1)"],
    ),
    (
        "accountRegion against region",
        setter("longbridge-sg", accountRegion="HK"),
        "services.longbridge-sg.accountRegion",
        ["HK services run in asia-east2", "region is asia-southeast1", "fix region or accountRegion"],
    ),
    (
        "accountRegion unknown",
        setter("longbridge-sg", accountRegion="JP"),
        "services.longbridge-sg.accountRegion",
        ["'JP'", "'HK' or 'SG'"],
    ),
    (
        "accountRegion off longbridge",
        setter("schwab", accountRegion="HK"),
        "services.schwab.accountRegion",
        ["only LongBridge", "remove it"],
    ),
    (
        "longbridge without token secret",
        deleter("longbridge-hk", "longportSecretName"),
        "services.longbridge-hk.longportSecretName",
        ["required for longbridge", "longport_token_hk"],
    ),
    (
        "duplicate service name",
        setter("schwab", serviceName="interactive-brokers-quant-service"),
        "services.schwab.serviceName",
        ["already the service of ibkr"],
    ),
    (
        "profile in service name",
        setter("ibkr", serviceName="ibkr-soxl-soxx-trend-income"),
        "services.ibkr.serviceName",
        ["contains the strategy name soxl_soxx_trend_income", "never encode a strategy"],
    ),
    (
        "alias in service name",
        setter("schwab", serviceName="schwab-hybrid-growth-income"),
        "services.schwab.serviceName",
        ["contains the strategy name hybrid_growth_income"],
    ),
    ("malformed release tag", in_release(usEquityStrategies="0.7.13"), "release.usEquityStrategies", ["v<version>", "v0.7.10"]),
    ("non-canonical release tag", in_release(quantPlatformKit="v0.7.010"), "release.quantPlatformKit", ["write it as v0.7.10"]),
    ("short commit", setter("ibkr", commit="ca6cae8"), "services.ibkr.commit", ["all 40 lowercase hex"]),
    ("uppercase commit", setter("ibkr", commit=IBKR_COMMIT.upper()), "services.ibkr.commit", ["40 lowercase hex"]),
    (
        "malformed image",
        setter("ibkr", image="not an image"),
        "services.ibkr.image",
        ["not an image reference", "<registry>/<path>:<commit>"],
    ),
    (
        "image without tag",
        setter("ibkr", image="us-central1-docker.pkg.dev/p/r/img"),
        "services.ibkr.image",
        ["no tag or digest", ":<commit>"],
    ),
    (
        "image tag is not the commit",
        setter("ibkr", image=f"us-central1-docker.pkg.dev/p/r/img:{OTHER_COMMIT}"),
        "services.ibkr.image",
        [f"tag {OTHER_COMMIT} does not match commit {IBKR_COMMIT}", f"us-central1-docker.pkg.dev/p/r/img:{IBKR_COMMIT}"],
    ),
    (
        "image tagged latest",
        setter("ibkr", image="us-central1-docker.pkg.dev/p/r/img:latest"),
        "services.ibkr.image",
        ["tag latest does not match"],
    ),
    (
        "owned STRATEGY_PROFILE in env",
        in_map("ibkr", "env", STRATEGY_PROFILE="global_etf_rotation"),
        "services.ibkr.env.STRATEGY_PROFILE",
        ["set by the program", "use strategyProfile"],
    ),
    (
        "owned RUNTIME_TARGET_JSON in env",
        in_map("ibkr", "env", RUNTIME_TARGET_JSON="{}"),
        "services.ibkr.env.RUNTIME_TARGET_JSON",
        ["set by the program", "strategyProfile, dryRunOnly and the target fields"],
    ),
    (
        "owned dry-run flag in env",
        in_map("schwab", "env", SCHWAB_DRY_RUN_ONLY="false"),
        "services.schwab.env.SCHWAB_DRY_RUN_ONLY",
        ["set by the program", "use dryRunOnly"],
    ),
    (
        "another platform's dry-run flag",
        in_map("schwab", "env", IBKR_DRY_RUN_ONLY="true"),
        "services.schwab.env.IBKR_DRY_RUN_ONLY",
        ["set by the program"],
    ),
    (
        "input-mode var on a direct profile",
        in_map("ibkr", "env", IBKR_FEATURE_SNAPSHOT_PATH=GS + "a.csv"),
        "services.ibkr.env.IBKR_FEATURE_SNAPSHOT_PATH",
        ["set by the program", "snapshot.featureSnapshotPath"],
    ),
    (
        "manifest var in env",
        in_map("longbridge-hk", "env", LONGBRIDGE_FEATURE_SNAPSHOT_MANIFEST_PATH=GS + "m.json"),
        "services.longbridge-hk.env.LONGBRIDGE_FEATURE_SNAPSHOT_MANIFEST_PATH",
        ["snapshot.manifestPath"],
    ),
    (
        "reconciliation var in env",
        in_map("ibkr", "env", IBKR_RECONCILIATION_OUTPUT_PATH=GS),
        "services.ibkr.env.IBKR_RECONCILIATION_OUTPUT_PATH",
        ["snapshot.reconciliationOutputPath"],
    ),
    (
        "region var in env",
        in_map("longbridge-hk", "env", ACCOUNT_REGION="HK"),
        "services.longbridge-hk.env.ACCOUNT_REGION",
        ["use accountRegion"],
    ),
    (
        "token secret name in env",
        in_map("longbridge-hk", "env", LONGPORT_SECRET_NAME="x"),
        "services.longbridge-hk.env.LONGPORT_SECRET_NAME",
        ["use longportSecretName"],
    ),
    (
        "owned name as a secret",
        in_map("ibkr", "secrets", STRATEGY_PROFILE="some-secret"),
        "services.ibkr.secrets.STRATEGY_PROFILE",
        ["set by the program"],
    ),
    (
        "plain TOKEN",
        in_map("schwab", "env", SCHWAB_REFRESH_TOKEN="abc"),
        "services.schwab.env.SCHWAB_REFRESH_TOKEN",
        ["looks like a credential", "move it to secrets", "SCHWAB_REFRESH_TOKEN: <Secret Manager secret name>"],
    ),
    ("plain SECRET", in_map("schwab", "env", CLIENT_SECRET="abc"), "services.schwab.env.CLIENT_SECRET", ["move it to secrets"]),
    ("plain KEY", in_map("schwab", "env", DATA_API_KEY="abc"), "services.schwab.env.DATA_API_KEY", ["move it to secrets"]),
    ("plain PASSWORD", in_map("ibkr", "env", IB_PASSWORD="abc"), "services.ibkr.env.IB_PASSWORD", ["move it to secrets"]),
    ("name in env and secrets", in_map("ibkr", "secrets", NOTIFY_LANG="notify-lang"), "services.ibkr.env.NOTIFY_LANG", ["also in secrets"]),
    ("legacy env", in_map("ibkr", "env", IB_GATEWAY_HOST="10.0.0.2"), "services.ibkr.env.IB_GATEWAY_HOST", ["legacy", "delete it"]),
    ("legacy prefix", in_map("ibkr", "env", CRISIS_ALERT_LEVEL="2"), "services.ibkr.env.CRISIS_ALERT_LEVEL", ["legacy"]),
    ("missing platform env", deleter("ibkr", "env"), "services.ibkr.env", []),
    (
        "bad secret name",
        in_map("schwab", "secrets", SCHWAB_API_KEY="not a name!"),
        "services.schwab.secrets",
        ["SCHWAB_API_KEY is not a Secret Manager secret name"],
    ),
    ("lowercase env name", in_map("ibkr", "env", notify_lang="zh"), "services.ibkr.env", ["notify_lang", "UPPER_SNAKE_CASE"]),
    ("dryRunOnly not a flag", setter("ibkr", dryRunOnly="maybe"), "services.ibkr.dryRunOnly", ["use true, false or keep"]),
    ("dryRunOnly as a string", setter("ibkr", dryRunOnly="false"), "services.ibkr.dryRunOnly", ["use true, false or keep"]),
    ("misspelt field", setter("ibkr", strategy_profile="x"), "services.ibkr.strategy_profile", ["not a known field"]),
    (
        "non-string env value",
        in_map("ibkr", "env", GLOBAL_TELEGRAM_CHAT_ID=-1001),
        "services.ibkr.env.GLOBAL_TELEGRAM_CHAT_ID",
        ["not a string", "quote it"],
    ),
    ("bad service key", lambda _r, s: s.update({"IBKR_2": copy.deepcopy(s["ibkr"])}), "services.IBKR_2", ["lowercase"]),
    ("bad project", setter("ibkr", project="Interactive_Brokers"), "services.ibkr.project", ["not a GCP project id"]),
    # issue 9: one parser for both secret forms; a rejected ref's parts are never echoed
    (
        "credential pasted as a secret ref",
        in_map("ibkr", "secrets", TELEGRAM_TOKEN="123456789:AAHsecretTokenPart"),
        "services.ibkr.secrets",
        ["TELEGRAM_TOKEN has a version that is neither latest nor a version number", "<secret>[:<version>]"],
    ),
    (
        "mapping-form secret with a path",
        in_map("ibkr", "secrets", TELEGRAM_TOKEN={"secret": "../../bad name!", "version": "1"}),
        "services.ibkr.secrets",
        ["TELEGRAM_TOKEN is not a Secret Manager secret name"],
    ),
    (
        "mapping-form secret with a negative version",
        in_map("ibkr", "secrets", TELEGRAM_TOKEN={"secret": "tg", "version": -7}),
        "services.ibkr.secrets",
        ["TELEGRAM_TOKEN has a version that is neither latest nor a version number"],
    ),
    (
        "mapping-form secret with an unknown key",
        in_map("ibkr", "secrets", TELEGRAM_TOKEN={"secret": "tg", "value": "x"}),
        "services.ibkr.secrets",
        ["TELEGRAM_TOKEN has an unknown key", "{secret: <name>, version: <version>}"],
    ),
    # issue 9: one spelling per key
    (
        "snake_case key",
        lambda _r, services: services["ibkr"].update(strategy_profile=services["ibkr"].pop("strategyProfile")),
        "services.ibkr.strategy_profile",
        ["did you mean strategyProfile?"],
    ),
    (
        "snake_case key in a nested model",
        setter("ibkr", scheduler={"time_zone": "America/New_York"}),
        "services.ibkr.scheduler.time_zone",
        ["did you mean timeZone?"],
    ),
    (
        "misspelt key",
        lambda _r, services: services["ibkr"].update(strategyProfle=services["ibkr"].pop("strategyProfile")),
        "services.ibkr.strategyProfle",
        ["did you mean strategyProfile?"],
    ),
    # issue 9: serviceAccount is an account of the service's project unless another project is named explicitly
    (
        "serviceAccount not an email",
        setter("ibkr", serviceAccount="runtime"),
        "services.ibkr.serviceAccount",
        ["not a service account email", "<account>@<project>.iam.gserviceaccount.com"],
    ),
    (
        "serviceAccount of another project",
        setter("ibkr", serviceAccount="ibkr-runtime@otherproject.iam.gserviceaccount.com"),
        "services.ibkr",
        ["belongs to project otherproject, not interactivebrokersquant", "serviceAccountProject: otherproject"],
    ),
    (
        "serviceAccountProject alone",
        setter("ibkr", serviceAccountProject="otherproject"),
        "services.ibkr",
        ["serviceAccountProject is set without serviceAccount"],
    ),
    # issue 9: control characters are refused, named by path and code point, never printed
    (
        "newline in an env value",
        in_map("ibkr", "env", NOTIFY_LANG="zh\nPlan: can proceed"),
        "services.ibkr.env.NOTIFY_LANG",
        ["contains a control character (U+000A)"],
    ),
    (
        "escape in a snapshot path",
        in_snapshot("longbridge-hk", strategyConfigPath="cfg\x1b[2J.json"),
        "services.longbridge-hk.snapshot.strategyConfigPath",
        ["control character (U+001B)"],
    ),
    (
        "platform holding a credential",
        setter("ibkr", platform="123456789:AAHsecretTokenPart"),
        "services.ibkr.platform",
        ["this value is not allowed"],
    ),
]

# The two cases that yield two problems for one mistake-free reason are asserted separately below.
_MISSING_ENV_CASE = "missing platform env"


@pytest.mark.parametrize("case_id, mutate, path, words", ONE_PROBLEM_CASES, ids=[case[0] for case in ONE_PROBLEM_CASES])
def test_each_bad_input_is_one_problem_naming_key_field_and_fix(case_id, mutate, path, words):
    problems = problems_for(mutate)
    if case_id == _MISSING_ENV_CASE:
        # Dropping the whole env map loses three required names: one problem per name, all on that path.
        assert {problem.path for problem in problems} == {path}
        assert sorted(problem.message for problem in problems) == [
            f"ibkr needs {name}; add it" for name in ("ACCOUNT_GROUP", "GLOBAL_TELEGRAM_CHAT_ID", "IB_ACCOUNT_GROUP_CONFIG_SECRET_NAME")
        ]
        return
    assert [problem.path for problem in problems] == [path], [str(problem) for problem in problems]
    for word in words:
        assert word in problems[0].message


def test_no_problem_echoes_a_pasted_credential():
    for mutate in (
        in_map("ibkr", "secrets", TELEGRAM_TOKEN="123456789:AAHsecretTokenPart"),
        setter("ibkr", platform="123456789:AAHsecretTokenPart"),
    ):
        report = ConfigError(problems_for(mutate)).report()
        assert "AAHsecret" not in report and "123456789" not in report


def test_control_characters_in_keys_are_escaped_in_the_report():
    report = ConfigError(problems_for(in_map("ibkr", "env", **{"X\nPlan: can proceed": "v"}))).report()
    assert "\nPlan: can proceed" not in report and "X\\nPlan" in report


def test_mapping_form_secrets_and_an_explicit_other_project_account_are_accepted():
    services = copy.deepcopy(SERVICES_RAW)
    services["ibkr"]["secrets"]["TELEGRAM_TOKEN"] = {"secret": "interactive-brokers-telegram-token", "version": 3}
    services["ibkr"]["serviceAccount"] = "ibkr-runtime@sharedidentity.iam.gserviceaccount.com"
    services["ibkr"]["serviceAccountProject"] = "sharedidentity"
    services["schwab"]["serviceAccount"] = "schwab-runtime@charlesschwabquant.iam.gserviceaccount.com"
    config = parse_stack(RELEASE_RAW, services)
    assert str(config.services["ibkr"].secrets["TELEGRAM_TOKEN"]) == "interactive-brokers-telegram-token:3"
    assert config.services["schwab"].service_account_project is None


def test_snapshot_profile_without_any_paths_reports_each_missing_path():
    problems = problems_for(setter("ibkr", strategyProfile="qqq_tech_enhancement"))
    assert [problem.path for problem in problems] == [
        "services.ibkr.snapshot.featureSnapshotPath",
        "services.ibkr.snapshot.manifestPath",
    ]


def test_several_problems_in_several_services_are_reported_together():
    def mutate(release: dict, services: dict) -> None:
        services["longbridge-sg"]["accountRegion"] = "HK"
        services["ibkr"]["env"]["IB_PASSWORD"] = "hunter2"
        services["longbridge-hk"]["snapshot"]["manifestPath"] = "s3://bucket/m.json"

    problems = problems_for(mutate)
    assert sorted(problem.path for problem in problems) == sorted(
        [
            "services.longbridge-sg.accountRegion",
            "services.ibkr.env.IB_PASSWORD",
            "services.longbridge-hk.snapshot.manifestPath",
        ]
    )
    report = ConfigError(problems).report()
    assert report.startswith("stack config is invalid (3 problems):")
    assert len(report.splitlines()) == 4


def test_an_invalid_release_still_reports_the_service_rules_that_need_no_profile_facts():
    def mutate(release: dict, services: dict) -> None:
        release["usEquityStrategies"] = "0.7.99"
        services["longbridge-sg"]["accountRegion"] = "HK"
        services["schwab"]["serviceName"] = "interactive-brokers-quant-service"

    assert sorted(problem.path for problem in problems_for(mutate)) == [
        "release.usEquityStrategies",
        "services.longbridge-sg.accountRegion",
        "services.schwab.serviceName",
    ]


def test_a_problem_never_echoes_a_credential():
    def mutate(_release: dict, services: dict) -> None:
        services["longbridge-sg"]["env"]["SCHWAB_APP_SECRET_VALUE"] = "s3cr3t-plain-value"
        services["schwab"]["secrets"]["SCHWAB_APP_SECRET"] = "pasted token value with spaces"
        services["ibkr"]["env"]["IB_TOKEN"] = 123456789

    report = ConfigError(problems_for(mutate)).report()
    for leaked in ("s3cr3t-plain-value", "pasted token value", "123456789"):
        assert leaked not in report
    assert "services.longbridge-sg.env.SCHWAB_APP_SECRET_VALUE" in report
    assert "services.schwab.secrets: SCHWAB_APP_SECRET is not a Secret Manager secret name" in report


def test_missing_sections_are_problems_not_crashes():
    with pytest.raises(ConfigError) as caught:
        parse_stack(None, {})
    assert [problem.path for problem in caught.value.problems] == ["release", "services"]


def test_prod_stack_file_is_valid_and_secret_names_stay_plain():
    config = load_stack_file(PROD_FILE)
    assert sorted(config.services) == ["ibkr", "longbridge-hk", "longbridge-sg", "schwab"]
    # *_SECRET_NAME holds the name of a secret, so it is allowed as a plain value.
    assert config.services["ibkr"].env["IB_ACCOUNT_GROUP_CONFIG_SECRET_NAME"] == "ibkr-account-groups"


@pytest.mark.project_files
def test_every_committed_stack_file_is_valid():
    """The checkout's own stacks (what `make plan` and `pulumi up` read) pass the first validation stage."""
    root = Path(__file__).resolve().parents[1]
    stacks = sorted(root.glob("Pulumi.*.yaml"))
    assert root / "Pulumi.prod.yaml" in stacks
    for path in stacks:
        assert load_stack_file(path).services, path


def _write_prod_variant(tmp_path: Path, replace: Callable[[str], str]) -> Path:
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(replace(PROD_FILE.read_text(encoding="utf-8")), encoding="utf-8")
    return path


def test_duplicate_service_key_in_a_stack_file_is_refused(tmp_path):
    def duplicate_schwab(text: str) -> str:
        start, end = text.index("    schwab:\n"), text.index("    longbridge-hk:\n")
        return text[:end] + text[start:end] + text[end:]

    with pytest.raises(ConfigError) as caught:
        load_stack_file(_write_prod_variant(tmp_path, duplicate_schwab))
    (problem,) = caught.value.problems
    assert problem.path == "services.schwab"
    assert "duplicate key" in problem.message and "keep one" in problem.message


def test_every_duplicate_field_in_a_stack_file_is_reported(tmp_path):
    def duplicate_fields(text: str) -> str:
        text = text.replace(
            "      strategyProfile: soxl_soxx_trend_income\n",
            "      strategyProfile: soxl_soxx_trend_income\n      strategyProfile: global_etf_rotation\n",
        )
        return text.replace("        NOTIFY_LANG: zh\n", "        NOTIFY_LANG: zh\n        NOTIFY_LANG: en\n", 1)

    with pytest.raises(ConfigError) as caught:
        load_stack_file(_write_prod_variant(tmp_path, duplicate_fields))
    assert [problem.path for problem in caught.value.problems] == [
        "services.ibkr.strategyProfile",
        "services.ibkr.env.NOTIFY_LANG",
    ]


def test_unknown_project_key_and_missing_file_are_problems(tmp_path):
    path = _write_prod_variant(tmp_path, lambda text: text.replace("us-equity-cutover:services:", "us-equity-cutover:servces:"))
    with pytest.raises(ConfigError) as caught:
        load_stack_file(path)
    paths = [problem.path for problem in caught.value.problems]
    assert "servces" in paths and "services" in paths
    with pytest.raises(ConfigError) as caught:
        load_stack_file(tmp_path / "Pulumi.nope.yaml")
    assert "cannot read" in caught.value.problems[0].message


def test_a_stack_file_with_its_secrets_provider_still_loads(tmp_path):
    # `pulumi stack init prod --secrets-provider gcpkms://...` (README: Accounts, roles and state) writes these
    # keys beside config:; the CLI and the program read config: alone.
    stack = tmp_path / "Pulumi.prod.yaml"
    stack.write_text(
        "secretsprovider: gcpkms://projects/ops/locations/global/keyRings/pulumi/cryptoKeys/state\n"
        "encryptedkey: CiQAm3ZQkP0dEr8H1lTzYmGSUQ6bbM2r7XK1vN9X0Yx2hZ0pMz8SSQBQ==\n" + SEED_STACK_FILE.read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    assert load_stack_file(stack).services == load_stack_file(SEED_STACK_FILE).services
