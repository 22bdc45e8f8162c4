"""The GitHub Actions workflows keep their structural promises, read from the YAML (they cannot run here).

actionlint and zizmor (`make lint`) check the workflows in general; this checks what this project
promises: triggers, the approved `up` in Environment `prod`, one cutover at a time, least privilege per
job, SHA-pinned actions, credentials from repository variables, and no expression expanded in a script.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
STACK_PATHS = {"Pulumi.*.yaml", "components/**", "release/**"}
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+(?:\.\d+)*\s*$")


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def all_workflows() -> dict[str, dict[str, Any]]:
    return {path.name: load(path.name) for path in sorted(WORKFLOWS.glob("*.yml"))}


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in job["steps"] if str(step.get("uses", "")).split("@")[0] == action]


def test_the_three_workflows_exist():
    assert set(all_workflows()) == {"review.yml", "cutover.yml", "drift.yml"}


def test_triggers():
    review, cutover, drift = load("review.yml")["on"], load("cutover.yml")["on"], load("drift.yml")["on"]
    assert set(review) == {"pull_request"} and STACK_PATHS <= set(review["pull_request"]["paths"])
    assert set(cutover) == {"push", "workflow_dispatch"} and cutover["push"]["branches"] == ["main"]
    assert cutover["push"]["paths"] == review["pull_request"]["paths"]
    assert set(drift) == {"schedule", "workflow_dispatch"}
    minute, hour, *rest = drift["schedule"][0]["cron"].split()
    assert minute.isdigit() and hour.isdigit() and rest == ["*", "*", "*"]
    for name in WORKFLOWS.glob("*.yml"):
        assert "pull_request_target" not in name.read_text(encoding="utf-8")


def test_cutover_applies_the_saved_plan_after_approval_in_environment_prod():
    jobs = load("cutover.yml")["jobs"]
    preview, up = jobs["preview"], jobs["up"]
    assert "environment" not in preview and up["environment"] == "prod" and up["needs"] == "preview"
    (saves,) = steps_using(preview, "pulumi/actions")
    assert saves["with"]["command"] == "preview" and saves["with"]["plan"] == "plan.json"
    (uploads,) = steps_using(preview, "actions/upload-artifact")
    (downloads,) = steps_using(up, "actions/download-artifact")
    assert uploads["with"]["path"].split() == ["plan.json", "cutover-plan.json"] and downloads["with"]["name"] == uploads["with"]["name"]
    applies = applying_step(up)
    order = [step.get("uses", step.get("run", "")) for step in up["steps"]]
    apply_at = order.index(applies["run"])
    verify_at = next(i for i, text in enumerate(order) if "release verify" in text and "--record" in text)
    record_at = max(i for i, step in enumerate(up["steps"]) if step in steps_using(up, "actions/upload-artifact"))
    assert apply_at < verify_at < record_at
    # The program deploys by digest: commit-live can only match it to the configured tag with the digest.
    assert "--images gcloud" in order[verify_at]
    # The plan reaches the run summary; "a second up follows" comes from its JSON's next_phase, not its prose.
    plan_step = next(step for step in preview["steps"] if "release plan" in step.get("run", ""))
    assert "GITHUB_STEP_SUMMARY" in plan_step["run"] and "--json-out cutover-plan.json" in plan_step["run"]
    assert "select(.next_phase != null)" in plan_step["run"] and "grep" not in plan_step["run"]
    assert preview["outputs"]["second-up"] == "${{ steps.plan.outputs.second-up }}"


def test_cutover_verify_judges_the_phase_the_update_applied_and_never_hides_a_failure():
    up = load("cutover.yml")["jobs"]["up"]
    (verify,) = [step for step in up["steps"] if step.get("id") == "verify"]
    (command,) = [line.strip() for line in verify["run"].splitlines() if "release verify" in line]
    words = command.split()
    assert words[words.index("--plan") + 1] == "cutover-plan.json" and 0 < int(words[words.index("--wait") + 1]) <= 1800
    # Every failure fails the step: verify's own exit status is the step's, nothing turns it green.
    assert verify["run"].strip().endswith('exit "$status"') and "exit 0" not in verify["run"]
    assert "continue-on-error" not in verify
    # The summary says what to run next, from the outcomes and the plan's second-up.
    order = [step.get("name", "") for step in up["steps"]]
    (summary,) = [step for step in up["steps"] if step.get("name") == "what to run next"]
    assert order.index(verify["name"]) < order.index(summary["name"])
    assert summary["if"] == "${{ !cancelled() }}"
    assert summary["env"] == {
        "SECOND_UP": "${{ needs.preview.outputs.second-up }}",
        "UP_OUTCOME": "${{ steps.up.outcome }}",
        "VERIFY_OUTCOME": "${{ steps.verify.outcome }}",
    }
    assert applying_step(up)["id"] == "up"
    for words in ("Run this workflow again", "Do not run a second", "did not finish", "complete and verified"):
        assert words in summary["run"]
    assert "exit" not in summary["run"]


def applying_step(job: dict[str, Any]) -> dict[str, Any]:
    (step,) = [step for step in job["steps"] if re.search(r"^\s*pulumi up\b", step.get("run", ""), re.M)]
    return step


def test_cutover_applies_with_the_plain_cli_which_previews_against_the_plan_before_changing_anything():
    up = load("cutover.yml")["jobs"]["up"]
    # pulumi/actions' `command: up` runs `pulumi up --skip-preview` (the Automation API's up): a plan
    # violation would then stop the run mid-apply. In the up job it only installs the CLI.
    (installs,) = steps_using(up, "pulumi/actions")
    assert "command" not in installs["with"] and set(installs["with"]) == {"pulumi-version"}
    step = applying_step(up)
    (command,) = [line.strip() for line in step["run"].splitlines() if line.strip().startswith("pulumi up")]
    words = command.split()
    assert words[words.index("--plan") + 1] == "plan.json" and "--yes" in words
    assert "--skip-preview" not in step["run"] and "--target" not in step["run"]
    assert words[words.index("--stack") + 1] == '"$STACK"' and words[words.index("--message") + 1] == '"$UP_MESSAGE"'
    assert "${{ github.sha }}" in step["env"]["UP_MESSAGE"]
    # Its output is piped to the summary: without pipefail the step would take tee's exit status.
    assert "set -o pipefail" in step["run"] and step["run"].strip().endswith('exit "$status"')
    assert step["env"]["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}" and 'pulumi login "$PULUMI_BACKEND_URL"' in step["run"]
    order = [step.get("uses", step.get("run", "")) for step in up["steps"]]
    assert order.index(installs["uses"]) < order.index(step["run"])


def test_one_cutover_at_a_time_never_cancelling_a_running_up():
    cutover, drift = load("cutover.yml"), load("drift.yml")
    group = cutover["concurrency"]["group"]
    assert cutover["concurrency"]["cancel-in-progress"] is False and "prod" in group and "${{" not in group
    # A queued drift run in the same group would displace a pending cutover.
    assert drift["concurrency"]["group"] != group


def test_review_posts_one_plan_comment_runs_preview_and_the_plan_exit_code_colours_the_check():
    plan = load("review.yml")["jobs"]["plan"]
    (comment,) = steps_using(plan, "actions/github-script")
    assert "updateComment" in comment["with"]["script"] and "createComment" in comment["with"]["script"]
    (preview,) = steps_using(plan, "pulumi/actions")
    assert preview["with"]["command"] == "preview" and preview["with"]["diff"] is True and preview["with"]["comment-on-pr"] is True
    last = plan["steps"][-1]
    assert "exit 1" in last["run"] and last["env"]["PLAN_EXIT"] == "${{ steps.plan.outputs.exit-code }}"


def test_drift_previews_with_refresh_verifies_and_opens_one_labelled_issue():
    job = load("drift.yml")["jobs"]["drift"]
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "pulumi preview" in runs and "--refresh" in runs and "--expect-no-changes" in runs
    assert "release verify" in runs and "--live gcloud" in runs and "--images gcloud" in runs
    (issue,) = steps_using(job, "actions/github-script")
    script = issue["with"]["script"]
    assert "labels: ['drift']" in script and "issues.update" in script and "issues.create" in script
    assert "steps.preview.outputs.exit-code != '0'" in issue["if"]


@pytest.mark.parametrize("name", ["review.yml", "cutover.yml", "drift.yml"])
def test_least_privilege_per_job(name):
    workflow = load(name)
    assert workflow["permissions"] == {}
    for job_name, job in workflow["jobs"].items():
        permissions = job["permissions"]
        assert permissions["contents"] == "read"
        authenticates = bool(steps_using(job, "google-github-actions/auth"))
        assert (permissions.get("id-token") == "write") == authenticates, job_name
        comments = any("createComment" in str(step.get("with", {}).get("script", "")) for step in job["steps"])
        pulumi_comments = any(step.get("with", {}).get("comment-on-pr") for step in steps_using(job, "pulumi/actions"))
        assert (permissions.get("pull-requests") == "write") == (name == "review.yml" and (comments or pulumi_comments)), job_name
        assert (permissions.get("issues") == "write") == (name == "drift.yml"), job_name
        assert set(permissions) <= {"contents", "id-token", "pull-requests", "issues"}


def test_every_action_is_pinned_to_a_full_commit_sha_with_its_version():
    shas: dict[str, set[str]] = {}
    for path in WORKFLOWS.glob("*.yml"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if re.match(r"^\s*(?:-\s+)?uses:", line):
                match = PINNED.match(line)
                assert match, f"{path.name}: not pinned to a commit SHA with a version comment: {line.strip()}"
                shas.setdefault(match[1], set()).add(match[2])
    assert {"actions/checkout", "pulumi/actions", "google-github-actions/auth"} <= set(shas)
    assert all(len(pins) == 1 for pins in shas.values()), shas


def test_checkout_keeps_no_credentials_and_gcp_auth_uses_repository_variables_only():
    for workflow in all_workflows().values():
        for job in workflow["jobs"].values():
            for step in steps_using(job, "actions/checkout"):
                assert step["with"]["persist-credentials"] is False
            for step in steps_using(job, "google-github-actions/auth"):
                assert set(step["with"]) == {"workload_identity_provider", "service_account"}
                assert step["with"]["workload_identity_provider"] == "${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}"
                assert re.fullmatch(r"\$\{\{ vars\.GCP_[A-Z_]+_SERVICE_ACCOUNT \}\}", step["with"]["service_account"])
    # Only the approved up job may act as the deployer.
    for name, workflow in all_workflows().items():
        for job_name, job in workflow["jobs"].items():
            accounts = {step["with"]["service_account"] for step in steps_using(job, "google-github-actions/auth")}
            deployer = "${{ vars.GCP_DEPLOYER_SERVICE_ACCOUNT }}" in accounts
            assert deployer == (name == "cutover.yml" and job_name == "up")


def test_pulumi_runs_against_the_backend_variable_and_the_pinned_cli():
    pin = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(encoding="utf-8"), re.M)
    assert pin
    for workflow in all_workflows().values():
        for job in workflow["jobs"].values():
            for step in steps_using(job, "pulumi/actions"):
                assert str(step["with"]["pulumi-version"]) == pin[1]
                if "command" in step["with"]:
                    assert step["env"]["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"
                    assert step["with"]["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
            for step in job["steps"]:
                if re.search(r"^\s*pulumi (login|preview|up)\b", step.get("run", ""), re.M):
                    assert step["env"]["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"


def test_no_expression_is_expanded_inside_a_script():
    for name, workflow in all_workflows().items():
        for job in workflow["jobs"].values():
            for step in job["steps"]:
                assert "${{" not in step.get("run", ""), f"{name}: {step.get('name')}"
                assert "${{" not in str(step.get("with", {}).get("script", "")), f"{name}: {step.get('name')}"


def test_make_test_runs_the_static_checks():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^test: .*\blint\b", makefile, re.M)
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "run.cjs" in lint and "zizmor --offline --min-severity medium" in lint
