"""The program's outputs pass the engine's update-plan check (`pulumi up --plan plan.json`).

`pulumi preview --save-plan` records, per component and for the stack, how the outputs differ from the
stored ones; `pulumi up --plan` then refuses any registered outputs that differ from the state otherwise
than the plan said ("resource violates plan", pulumi `pkg/resource/deploy/plan.go` `checkDiff`, called from
`step_executor.go` on every RegisterResourceOutputs). An unknown value in the plan matches anything; a
known one must come out exactly so.

Mocks echo inputs back, so they cannot show this. `ProviderModel` answers like terraform-provider-google
through the bridge instead: the preview of an update carries every prior computed attribute (SDKv2 plans a
computed attribute as its prior value unless a CustomizeDiff marks it unknown, and `cloud_run_v2_service`'s
marks none), the preview of a create leaves them unknown, and the apply reports what the update made (a new
revision, a new generation). Each scenario runs the real `__main__.py` twice, as preview and as apply, and
checks every registered output map through `plan_violations`, a transcription of `checkDiff`.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import pytest
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockResourceArgs

from tests.fixtures.pulumi_mocks import INVOKER_TYPE, JOB_TYPE, SERVICE_TYPE, CutoverMocks, ProgramRun, run_main
from tests.test_program_cutover import baseline_live, ibkr_key, live_after

# Computed attributes an update of each resource changes (the rest, `uri` among them, stay as they were).
CHANGED_BY_UPDATE: Mapping[str, tuple[str, ...]] = {
    SERVICE_TYPE: (
        "latestReadyRevision", "latestCreatedRevision", "generation", "observedGeneration", "updateTime", "etag",
        "conditions", "terminalConditions", "trafficStatuses",
    ),
    JOB_TYPE: ("state",),
    INVOKER_TYPE: ("etag",),
}  # fmt: skip
STABLE: Mapping[str, tuple[str, ...]] = {SERVICE_TYPE: ("uri", "uid", "createTime")}


def is_unknown(value: Any) -> bool:
    return isinstance(value, Unknown) or value == rpc.UNKNOWN


def contains_unknown(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(contains_unknown(item) for item in value.values())
    if isinstance(value, list):
        return any(contains_unknown(item) for item in value)
    return is_unknown(value)


def _present(value: Any) -> bool:
    # A null output is no value (`PropertyValue.HasValue`).
    return value is not None


def known_equal(a: Any, b: Any) -> bool:
    """`PropertyValue.DeepEquals` as `Diff` uses it: an unknown equals nothing known."""
    if is_unknown(a) or is_unknown(b):
        return is_unknown(a) and is_unknown(b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = {k for k, v in a.items() if _present(v)} | {k for k, v in b.items() if _present(v)}
        return all(known_equal(a.get(k), b.get(k)) for k in keys)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(known_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def equal_including_unknowns(a: Any, b: Any) -> bool:
    """`PropertyValue.DeepEqualsIncludeUnknowns`: anything equals an unknown, at any depth."""
    if is_unknown(a) or is_unknown(b):
        return True
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = {k for k, v in a.items() if _present(v)} | {k for k, v in b.items() if _present(v)}
        return all(equal_including_unknowns(a.get(k), b.get(k)) for k in keys)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal_including_unknowns(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[dict[str, Any], set[str], dict[str, Any], dict[str, Any]]:
    adds = {k: v for k, v in new.items() if _present(v) and not _present(old.get(k))}
    deletes = {k for k, v in old.items() if _present(v) and not _present(new.get(k))}
    updates = {k: v for k, v in new.items() if _present(v) and _present(old.get(k)) and not known_equal(old[k], v)}
    sames = {k: v for k, v in new.items() if _present(v) and _present(old.get(k)) and known_equal(old[k], v)}
    return adds, deletes, updates, sames


def plan_violations(old: Mapping[str, Any], preview: Mapping[str, Any], applied: Mapping[str, Any]) -> list[str]:
    """`checkDiff(old, applied, NewPlanDiff(old.Diff(preview)))`: every way the applied outputs break the plan."""
    plan_adds, plan_deletes, plan_updates, _ = _diff(old, preview)
    adds, deletes, updates, sames = _diff(old, applied)
    problems = []
    for key, actual in adds.items():
        if key not in plan_adds or not equal_including_unknowns(plan_adds[key], actual):
            problems.append(f"+{key}")
    for key in deletes:
        if key not in plan_deletes and not (key in plan_updates and is_unknown(plan_updates[key])):
            problems.append(f"-{key}")
    for key, actual in updates.items():
        expected = plan_updates.get(key, plan_adds.get(key))
        if expected is None or not equal_including_unknowns(expected, actual):
            problems.append(f"~{key}")
    for key, expected in plan_adds.items():
        if key in adds or key in updates:
            continue
        if (key in applied and _present(applied[key]) and not equal_including_unknowns(expected, applied[key])) or (
            not _present(applied.get(key)) and not is_unknown(expected)
        ):
            problems.append(f"={key}")
    for key, expected in plan_updates.items():
        if key in updates:
            continue
        if key in adds:
            problems.append(f"+{key}")
        elif _present(applied.get(key)):
            if not equal_including_unknowns(expected, applied[key]):
                problems.append(f"={key}")
        elif not is_unknown(expected):
            problems.append(f"-{key}")
    for key in plan_deletes:
        if key not in deletes and (key in adds or key in updates or key in sames):
            problems.append(f"!{key}")
    return sorted(problems)


class ProviderModel(CutoverMocks):
    """The provider's answers in one phase of an update: `preview` (the saved plan) or `apply`."""

    def __init__(self, *, applying: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.applying = applying

    def _prior(self, args: Any) -> Optional[dict[str, Any]]:
        inputs = args.inputs
        if args.typ == SERVICE_TYPE:
            live = self.live.get((inputs["project"], inputs["location"], inputs["name"]))
            if live is None:
                return None
            return {
                **{name: live.get(name) for name in STABLE[SERVICE_TYPE]},
                **{name: live.get(name, f"prior-{name}") for name in CHANGED_BY_UPDATE[SERVICE_TYPE]},
            }
        if args.typ == JOB_TYPE:
            job = self.jobs.get((inputs["project"], inputs["region"], inputs["name"]))
            return None if job is None else {"state": job.get("state", "ENABLED")}
        return None

    def new_resource(self, args: Any) -> tuple[Optional[str], dict]:
        ident, state = super().new_resource(args)
        changed, stable = CHANGED_BY_UPDATE.get(args.typ, ()), STABLE.get(args.typ, ())
        prior = self._prior(args)
        for name in (*changed, *stable):
            if self.applying:
                new = f"applied-{name}"
                state[name] = prior[name] if prior is not None and name in stable and prior.get(name) else state.get(name, new)
                if name in changed:
                    state[name] = new
            else:
                state[name] = rpc.UNKNOWN if prior is None else prior[name]
        return ident, state


def phases(live: Mapping[tuple[str, str, str], dict], **mocks: Any) -> tuple[ProgramRun, ProgramRun]:
    preview = run_main(mocks=ProviderModel(applying=False, live=live, **mocks), preview=True)
    applied = run_main(mocks=ProviderModel(applying=True, live=live, **mocks))
    assert preview.error is None and applied.error is None, (preview.error, applied.error)
    return preview, applied


def violations(preview: ProgramRun, applied: ProgramRun) -> dict[str, list[str]]:
    """Per output owner (component URN, or the stack), what `pulumi up --plan` would refuse."""
    found = {}
    maps = [("stack", preview.stack_outputs, applied.stack_outputs)]
    maps += [(urn, outputs, applied.registered_outputs.get(urn, {})) for urn, outputs in preview.registered_outputs.items()]
    for owner, planned, actual in maps:
        # No prior outputs (a first run, or an import's empty component), and prior outputs equal to what
        # the preview knows (a second run of the same release).
        for old in ({}, {key: value for key, value in planned.items() if not contains_unknown(value)}):
            problems = plan_violations(old, planned, actual)
            if problems:
                found[owner] = problems
    return found


# --- the rule itself -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "preview", "applied", "expected"),
    [
        # A computed value the preview carried from the prior state, which the apply changed: refused.
        ({"rev": "r1"}, {"rev": "r1"}, {"rev": "r2"}, ["~rev"]),
        ({}, {"rev": "r1"}, {"rev": "r2"}, ["+rev"]),
        # Nested in an exported map, the same.
        ({}, {"svc": {"uri": "u", "rev": "r1"}}, {"svc": {"uri": "u", "rev": "r2"}}, ["+svc"]),
        # Unknown in the preview (a create): anything goes.
        ({}, {"svc": {"uri": rpc.UNKNOWN}}, {"svc": {"uri": "u"}}, []),
        ({"rev": "r1"}, {"rev": rpc.UNKNOWN}, {"rev": "r2"}, []),
        # Known and unchanged: fine.
        ({"uri": "u"}, {"uri": "u"}, {"uri": "u"}, []),
        # Planned as a change that did not happen: refused too.
        ({"rev": "r1"}, {"rev": "r2"}, {"rev": "r1"}, ["=rev"]),
    ],
)
def test_plan_violations_follow_the_engine(old, preview, applied, expected):
    assert plan_violations(old, preview, applied) == expected


def test_the_model_would_catch_the_live_revision_as_an_output():
    # What the component exported before: the provider's revision, carried in the preview of an update.
    live = baseline_live()
    registration = MockResourceArgs(typ=SERVICE_TYPE, name="ibkr-cloud-run", inputs=dict(live), custom=True)
    _, preview_state = ProviderModel(applying=False, live={ibkr_key(): live}).new_resource(registration)
    _, applied_state = ProviderModel(applying=True, live={ibkr_key(): live}).new_resource(registration)
    exported = "latestReadyRevision"
    assert preview_state[exported] == live[exported] != applied_state[exported]
    assert plan_violations({}, {"ibkr": {exported: preview_state[exported]}}, {"ibkr": {exported: applied_state[exported]}}) == ["+ibkr"]


# --- the program ------------------------------------------------------------------------------------


def test_deploy_image_and_creates_leave_the_plan_intact(github_api):
    preview, applied = phases({ibkr_key(): baseline_live()})
    assert applied.outputs["ibkr"]["phase"] == "deploy-image" and applied.outputs["schwab"]["phase"] == "create"
    # The model did its part: the update changed computed values the preview had carried or left unknown.
    ibkr = applied.services()["ibkr"].state
    assert ibkr["latestReadyRevision"] == "applied-latestReadyRevision" and ibkr["uri"] == baseline_live()["uri"]
    assert is_unknown(preview.stack_outputs["schwab"]["uri"])
    assert violations(preview, applied) == {}


def test_switch_env_leaves_the_plan_intact(github_api):
    first = run_main(mocks=CutoverMocks(live={ibkr_key(): baseline_live()}))
    live = {ibkr_key(): live_after(first, "ibkr", "interactive-brokers-quant-service-00042-new")}
    preview, applied = phases(live)
    assert applied.outputs["ibkr"]["phase"] == "switch-env"
    assert violations(preview, applied) == {}


def test_a_blocked_service_and_a_paused_job_leave_the_plan_intact(github_api):
    first = run_main(mocks=CutoverMocks(live={ibkr_key(): baseline_live()}))
    live = live_after(first, "ibkr", "interactive-brokers-quant-service-00042-new")
    live["terminalConditions"] = [{"type": "Ready", "state": "CONDITION_FAILED"}]
    job = {
        "name": "projects/interactivebrokersquant/locations/us-central1/jobs/interactive-brokers-quant-scheduler",
        "state": "PAUSED",
        "schedule": "45 15 * * 1-5",
        "timeZone": "America/New_York",
        "httpTarget": {
            "uri": live["uri"] + "/run",
            "httpMethod": "POST",
            "oidcToken": {"serviceAccountEmail": "ibkr-platform-scheduler@interactivebrokersquant.iam.gserviceaccount.com"},
        },
    }
    preview, applied = phases(
        {ibkr_key(): live}, jobs={("interactivebrokersquant", "us-central1", "interactive-brokers-quant-scheduler"): job}
    )
    assert applied.outputs["ibkr"]["phase"] == "blocked"
    assert violations(preview, applied) == {}
