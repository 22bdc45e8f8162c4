"""release/cutover/scheduling.py: scheduler config rules, job names, the job the program registers, live readers."""

from __future__ import annotations

import contextlib
import http.server
import json
import subprocess
import threading

import pytest
import requests

from release.config import ConfigError, SchedulerSpec
from release.cutover.live import from_knative_json
from release.cutover.scheduling import (
    JobReadError,
    SchedulingInputError,
    companion_jobs,
    cron_problem,
    from_job_json,
    from_policy_json,
    held_job_inputs,
    job_changes,
    job_id,
    job_inputs,
    job_name,
    provider_headers,
    read_iam_gcloud,
    read_job_api,
    read_jobs_gcloud,
    read_jobs_path,
    scheduler_account,
    scheduler_checks,
    scheduler_problems,
    service_urls,
)
from release.stack import load_stack_file, parse_stack
from tests.fixtures.live_json import iam_policy, knative_for_spec, scheduler_job, service_url, write_json
from tests.fixtures.projects import SEED_STACK_FILE

CONFIG = load_stack_file(SEED_STACK_FILE)
IBKR, SCHWAB, HK = CONFIG.services["ibkr"], CONFIG.services["schwab"], CONFIG.services["longbridge-hk"]


@pytest.mark.parametrize("schedule", ["45 15 * * 1-5", "*/5 * * * *", "0 9,15 1-15 JAN-MAR mon-fri", "0 0 * * 7", "30 14 * * SUN"])
def test_valid_cron(schedule):
    assert cron_problem(schedule) is None


@pytest.mark.parametrize(
    "schedule, message",
    [
        ("45 15 * *", "five fields"),
        ("60 15 * * 1-5", "outside 0-59"),
        ("45 24 * * 1-5", "outside 0-23"),
        ("45 15 * * 5-1", "backwards"),
        ("45 15 * * FOO", "outside 0-7"),
        ("45 15 * * */0", "step 0"),
        ("@daily", "five fields"),
        ("45 15 ? * 1-5", "not valid cron"),
    ],
)
def test_invalid_cron(schedule, message):
    assert message in (cron_problem(schedule) or "")


def with_scheduler(spec, **fields):
    return spec.model_copy(update={"scheduler": SchedulerSpec(**fields)})


def test_scheduler_problems_name_the_field():
    spec = with_scheduler(
        IBKR,
        schedule="45 15 * *",
        time_zone="America/New_Yrok",
        attempt_deadline="2h",
        service_account="ibkr-platform-scheduler@otherproject.iam.gserviceaccount.com",
    )
    paths = {problem.path: problem.message for problem in scheduler_problems("ibkr", spec)}
    assert set(paths) == {
        "services.ibkr.scheduler.schedule",
        "services.ibkr.scheduler.timeZone",
        "services.ibkr.scheduler.attemptDeadline",
        "services.ibkr.scheduler.serviceAccount",
    }
    assert "interactivebrokersquant" in paths["services.ibkr.scheduler.serviceAccount"]
    ok = with_scheduler(HK, time_zone="Asia/Hong_Kong", schedule="35 9 * * 1-5", attempt_deadline="330s")
    assert scheduler_problems("longbridge-hk", ok) == []


def test_a_bad_scheduler_block_fails_the_stack_with_every_problem():
    raw = {key: spec.model_dump(by_alias=True, exclude_none=True) for key, spec in CONFIG.services.items()}
    raw["schwab"]["scheduler"] = {"schedule": "99 * * * *", "timeZone": "Mars/Olympus"}
    raw["ibkr"]["scheduler"] = {"paused": "yes"}
    with pytest.raises(ConfigError) as error:
        parse_stack(CONFIG.release.model_dump(by_alias=True), raw)
    paths = {problem.path for problem in error.value.problems}
    assert {"services.schwab.scheduler.schedule", "services.schwab.scheduler.timeZone", "services.ibkr.scheduler.paused"} <= paths


def test_job_names_follow_the_real_jobs():
    assert job_name(IBKR) == "interactive-brokers-quant-scheduler"
    assert job_name(HK) == "longbridge-quant-hk-scheduler"
    assert companion_jobs(IBKR) == ("interactive-brokers-quant-warmup-scheduler", "interactive-brokers-quant-precheck-scheduler")
    assert "schwab-monitor-dispatcher-scheduler" in companion_jobs(SCHWAB)


def test_job_inputs_defaults_for_a_new_job():
    inputs = job_inputs(IBKR, None)
    assert (inputs.schedule, inputs.time_zone, inputs.paused, inputs.attempt_deadline) == (
        "45 15 * * 1-5",
        "America/New_York",
        False,
        "330s",
    )
    assert inputs.service_account == "ibkr-platform-scheduler@interactivebrokersquant.iam.gserviceaccount.com"
    assert (inputs.uri, inputs.audience, inputs.http_method) == (None, None, "POST")
    assert inputs.origins == {"schedule": "default", "timeZone": "default", "paused": "enabled: true", "attemptDeadline": "default"}
    assert job_inputs(SCHWAB, None).attempt_deadline is None


def test_job_inputs_hold_live_where_config_is_silent_and_config_wins_where_set():
    live = from_job_json(scheduler_job(HK, schedule="35 9 * * 1-5", time_zone="Asia/Hong_Kong", state="PAUSED"), "live")
    held = job_inputs(HK, live)
    # The pause state is the target's: enabled (the default) resumes a paused job, as the platforms' workflows do.
    assert (held.schedule, held.time_zone, held.paused, held.attempt_deadline) == ("35 9 * * 1-5", "Asia/Hong_Kong", False, "180s")
    assert held.origins == {"schedule": "live", "timeZone": "live", "paused": "enabled: true", "attemptDeadline": "live"}
    configured = job_inputs(with_scheduler(HK, paused=False, schedule="40 9 * * 1-5"), live)
    assert (configured.schedule, configured.paused, configured.time_zone) == ("40 9 * * 1-5", False, "Asia/Hong_Kong")
    assert configured.origins["paused"] == "config"
    # The target is always the service's own, never an old URL carried over from live.
    old = from_job_json(scheduler_job(HK, url="https://old.a.run.app"), "live")
    assert job_inputs(HK, old).uri is None


def test_a_blocked_job_is_held_exactly_as_live():
    live = from_job_json(scheduler_job(IBKR, url="https://old.a.run.app", state="PAUSED", deadline="600s"), "live")
    held = held_job_inputs(IBKR, live)
    assert (held.uri, held.audience, held.paused, held.attempt_deadline) == (
        "https://old.a.run.app/run",
        "https://old.a.run.app",
        True,
        "600s",
    )
    # Held as the provider reads it back: the API's own User-Agent is not the job's setting.
    assert held.headers == {}


def test_policy_reader_ignores_conditional_bindings():
    document = {
        "bindings": [
            {"role": "roles/run.invoker", "members": ["serviceAccount:a@p.iam.gserviceaccount.com"]},
            {"role": "roles/run.invoker", "members": ["serviceAccount:b@p.iam.gserviceaccount.com"], "condition": {"expression": "false"}},
        ]
    }
    policy = from_policy_json(document, "iam.json")
    assert policy.has("roles/run.invoker", "serviceAccount:a@p.iam.gserviceaccount.com")
    assert not policy.has("roles/run.invoker", "serviceAccount:b@p.iam.gserviceaccount.com")


def test_jobs_dir_matches_jobs_to_services_and_leaves_missing_ones_none(tmp_path):
    write_json(tmp_path / "jobs" / "ibkr.json", scheduler_job(IBKR))
    jobs = read_jobs_path(tmp_path / "jobs", CONFIG.services)
    assert jobs["ibkr"].name == "interactive-brokers-quant-scheduler" and jobs["schwab"] is None
    write_json(tmp_path / "jobs" / "again.json", scheduler_job(IBKR))
    with pytest.raises(SchedulingInputError, match="again"):
        read_jobs_path(tmp_path / "jobs", CONFIG.services)


def runner_for(answers):
    def run(command, **kwargs):
        assert kwargs["timeout"] > 0
        answer = answers[command[4]]
        if isinstance(answer, tuple):
            return subprocess.CompletedProcess(command, answer[0], "", answer[1])
        return subprocess.CompletedProcess(command, 0, json.dumps(answer), "")

    return run


def test_gcloud_readers_not_found_and_failure():
    services = {"ibkr": IBKR}
    assert read_jobs_gcloud(services, runner_for({job_name(IBKR): (1, "ERROR: NOT_FOUND: Job not found.")})) == {"ibkr": None}
    assert read_jobs_gcloud(services, runner_for({job_name(IBKR): scheduler_job(IBKR)}))["ibkr"].state == "ENABLED"
    with pytest.raises(SchedulingInputError, match="PERMISSION_DENIED"):
        read_iam_gcloud(services, runner_for({IBKR.service_name: (1, "ERROR: PERMISSION_DENIED")}))


def test_service_urls_include_the_annotated_deterministic_url():
    document = knative_for_spec(IBKR, {}, annotations={"run.googleapis.com/urls": json.dumps(["https://x-123.us-central1.run.app"])})
    urls = service_urls(from_knative_json(document, IBKR.service_name))
    assert urls == (service_url(IBKR), "https://x-123.us-central1.run.app")


def test_a_urls_annotation_nested_past_the_recursion_limit_is_ignored_not_a_crash():
    # Live state is data: the annotation is read as "no extra URLs", like any other unreadable JSON.
    document = knative_for_spec(IBKR, {}, annotations={"run.googleapis.com/urls": "[" * 100000 + "]" * 100000})
    assert service_urls(from_knative_json(document, IBKR.service_name)) == (service_url(IBKR),)
    # and gcloud output nested that deep is bad input naming the command
    with pytest.raises(SchedulingInputError, match="nests deeper than 64 levels"):
        read_jobs_gcloud({"ibkr": IBKR}, lambda command, **_: subprocess.CompletedProcess(command, 0, "[" * 100000 + "]" * 100000, ""))


def test_a_job_on_the_deterministic_url_passes():
    url = "https://interactive-brokers-quant-service-123.us-central1.run.app"
    live = from_knative_json(knative_for_spec(IBKR, {}, annotations={"run.googleapis.com/urls": json.dumps([url])}), IBKR.service_name)
    job = from_job_json(scheduler_job(IBKR, url=url), "job")
    policy = from_policy_json(
        iam_policy({"roles/run.invoker": ["serviceAccount:ibkr-platform-scheduler@interactivebrokersquant.iam.gserviceaccount.com"]}), "iam"
    )
    checks = scheduler_checks(IBKR, live, {"ibkr": job}, {"ibkr": policy}, "ibkr")
    assert [(check.id, check.ok) for check in checks] == [("scheduler-job", True), ("scheduler-target", True), ("invoker-binding", True)]


# --- the program's API read, against an HTTP server on 127.0.0.1 --------------------------------


@contextlib.contextmanager
def scheduler_api(answers):
    """A Cloud Scheduler API stand-in: path -> (status, body bytes)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server dispatches GET to this name
            status, body = answers.get(self.path, (404, b'{"error": {"code": 404}}'))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_api_read_of_a_job_a_missing_job_and_a_refusal():
    path = f"/v1/{job_id(HK)}"
    with scheduler_api({path: (200, json.dumps(scheduler_job(HK, schedule="35 9 * * 1-5")).encode())}) as url:
        job = read_job_api(HK, session=requests.Session(), api_url=url)
        assert job is not None and job.schedule == "35 9 * * 1-5" and job.name == "longbridge-quant-hk-scheduler"
        assert read_job_api(IBKR, session=requests.Session(), api_url=url) is None
    with scheduler_api({path: (403, b'{"error": {"code": 403, "message": "denied"}}')}) as url:
        with pytest.raises(JobReadError, match="HTTP 403"):
            read_job_api(HK, session=requests.Session(), api_url=url)


def test_api_answers_that_are_not_this_job_stop_the_run():
    path = f"/v1/{job_id(HK)}"
    other = scheduler_job(IBKR)
    with scheduler_api({path: (200, json.dumps(other).encode())}) as url:
        with pytest.raises(JobReadError, match="not projects/longbridgequant"):
            read_job_api(HK, session=requests.Session(), api_url=url)
    with scheduler_api({path: (200, b"<html>proxy login</html>")}) as url:
        with pytest.raises(JobReadError, match="not valid JSON"):
            read_job_api(HK, session=requests.Session(), api_url=url)
    with scheduler_api({path: (200, b"x" * 1_100_000)}) as url:
        with pytest.raises(JobReadError, match="larger than"):
            read_job_api(HK, session=requests.Session(), api_url=url)


def test_api_unreachable_stops_the_run():
    with pytest.raises(JobReadError, match="cannot be read"):
        read_job_api(HK, session=requests.Session(), api_url="http://127.0.0.1:9/v1")


def test_adopted_scheduler_block_carries_only_what_differs_from_the_defaults():
    from release.cutover.scheduling import adopted_scheduler

    assert adopted_scheduler(IBKR, None) is None
    assert adopted_scheduler(IBKR, from_job_json(scheduler_job(IBKR, deadline="330s"), "live")) is None
    hk = from_job_json(scheduler_job(HK, time_zone="Asia/Hong_Kong", state="PAUSED", deadline="180s"), "live")
    assert adopted_scheduler(HK, hk) == {"timeZone": "Asia/Hong_Kong", "paused": True, "attemptDeadline": "180s"}
    other = from_job_json(scheduler_job(HK, account="custom-caller@longbridgequant.iam.gserviceaccount.com", deadline="180s"), "live")
    assert adopted_scheduler(HK, other) == {
        "attemptDeadline": "180s",
        "serviceAccount": "custom-caller@longbridgequant.iam.gserviceaccount.com",
    }
    # The block it writes is valid stack config.
    block = SchedulerSpec.model_validate(adopted_scheduler(HK, hk))
    assert scheduler_problems("longbridge-hk", HK.model_copy(update={"scheduler": block})) == []


def test_import_entries_name_what_the_program_registers():
    from release.cutover.scheduling import import_resources

    live = from_job_json(scheduler_job(IBKR), "live")
    granted = from_policy_json(iam_policy({"roles/run.invoker": [f"serviceAccount:{scheduler_account(IBKR)}"]}), "iam")
    job, member = import_resources("ibkr", IBKR, live, granted, parent="ibkr", provider="gcp-interactivebrokersquant")
    assert job == {
        "type": "gcp:cloudscheduler/job:Job",
        "name": "ibkr-scheduler",
        "id": "projects/interactivebrokersquant/locations/us-central1/jobs/interactive-brokers-quant-scheduler",
        "parent": "ibkr",
        "provider": "gcp-interactivebrokersquant",
    }
    assert member["name"] == "ibkr-invoker" and member["id"].endswith(
        " roles/run.invoker serviceAccount:ibkr-platform-scheduler@interactivebrokersquant.iam.gserviceaccount.com"
    )
    assert [entry["name"] for entry in import_resources("ibkr", IBKR, None, granted, "ibkr", "p")] == ["ibkr-invoker"]
    # A member the live policy does not grant is never imported (the provider reads nothing for it and the
    # import fails half-way); nor one whose policy was not read. The first pulumi up creates it.
    other = from_policy_json(
        iam_policy({"roles/run.invoker": ["serviceAccount:someone@interactivebrokersquant.iam.gserviceaccount.com"]}), "iam"
    )
    conditional = from_policy_json(
        {
            "bindings": [
                {
                    "role": "roles/run.invoker",
                    "members": [f"serviceAccount:{scheduler_account(IBKR)}"],
                    "condition": {"expression": "false"},
                }
            ]
        },
        "iam",
    )
    for policy in (other, conditional, None):
        assert [entry["name"] for entry in import_resources("ibkr", IBKR, live, policy, "ibkr", "p")] == ["ibkr-scheduler"]


def test_a_template_urls_annotation_cannot_steer_the_job_to_another_host():
    # Whoever deploys a revision sets template annotations; only the service-level list is Cloud Run's.
    document = knative_for_spec(IBKR, {})
    document["spec"]["template"]["metadata"]["annotations"]["run.googleapis.com/urls"] = json.dumps(["https://attacker.example"])
    assert service_urls(from_knative_json(document, IBKR.service_name)) == (service_url(IBKR),)


# --- headers, exactly as the provider's reader keeps them ------------------------------------------

APP_ENGINE = "AppEngine-Google; (+http://code.google.com/appengine)"
TOKEN = "Bearer ya29.planted-token-never-shown"


@pytest.mark.parametrize(
    ("headers", "token_set", "kept"),
    [
        # What the API adds to an HTTP job: all dropped.
        ({"User-Agent": "Google-Cloud-Scheduler", "Content-Type": "application/octet-stream"}, True, {}),
        ({"User-Agent": APP_ENGINE}, False, {}),
        ({"X-Google-Trace": "1", "X-AppEngine-Country": "US", "Content-Length": "0"}, False, {}),
        # The provider's pattern is a search, not a prefix match, and it is case-sensitive.
        ({"My-X-Google-Thing": "1", "X-Content-Length-Hint": "2", "x-google-lower": "3"}, False, {"x-google-lower": "3"}),
        # A custom User-Agent keeps its own text; App Engine's suffix is cut and the rest trimmed.
        ({"User-Agent": f"ops-bot/2 {APP_ENGINE}"}, False, {"User-Agent": "ops-bot/2"}),
        ({"User-Agent": "ops-bot/2\x1c"}, False, {"User-Agent": "ops-bot/2\x1c"}),
        # A set Content-Type other than the default is the job's own.
        ({"Content-Type": "application/json"}, True, {"Content-Type": "application/json"}),
        # Authorization: injected by the API when a token is set, else the job's own literal header.
        ({"Authorization": TOKEN}, True, {}),
        ({"Authorization": TOKEN}, False, {"Authorization": TOKEN}),
        ({"authorization": TOKEN}, True, {"authorization": TOKEN}),
    ],
)
def test_provider_headers_follow_the_providers_reader(headers, token_set, kept):
    assert provider_headers(headers, token_set) == kept


def test_the_job_registers_only_what_the_provider_reads_back():
    api = {"User-Agent": "Google-Cloud-Scheduler", "Authorization": TOKEN, "X-Google-Id": "7", "X-Team": "quant"}
    live = from_job_json(scheduler_job(HK, headers=api), "live")
    assert job_inputs(HK, live).headers == {"X-Team": "quant"}
    assert held_job_inputs(HK, live).headers == {"X-Team": "quant"}
    # The plan compares by the same rule: nothing to change, so no update every run.
    assert job_changes(HK, False, service_url(HK), live) == {"action": "no change", "changes": []}


def test_the_plan_shows_a_header_change_with_credentials_masked():
    # A job without a token whose literal Authorization the provider keeps: the program's job sends OIDC,
    # so the header goes (the API injects its own); the plan says so without printing the value.
    document = scheduler_job(HK, headers={"Authorization": TOKEN, "X-Team": "quant"})
    del document["httpTarget"]["oidcToken"]
    changes = job_changes(HK, False, service_url(HK), from_job_json(document, "live"))
    (change,) = [c for c in changes["changes"] if c["field"] == "headers"]
    assert change == {"field": "headers", "live": {"Authorization": "(secret)", "X-Team": "quant"}, "desired": {"X-Team": "quant"}}
    assert TOKEN not in json.dumps(changes)
    # A held credential header of the job's own (it survives the provider's reader) is no change.
    own = from_job_json(scheduler_job(HK, headers={"Proxy-Authorization": "Basic cGxhbnRlZA=="}), "live")
    assert job_inputs(HK, own).headers == {"Proxy-Authorization": "Basic cGxhbnRlZA=="}
    assert job_changes(HK, False, service_url(HK), own)["action"] == "no change"


def test_header_names_and_values_must_be_strings_and_are_never_quoted():
    document = scheduler_job(HK, headers={"X-Team": 424242})  # type: ignore[dict-item]  # hostile input on purpose
    with pytest.raises(SchedulingInputError, match="httpTarget.headers") as raised:
        from_job_json(document, "live")
    assert "424242" not in str(raised.value)
