"""Each rule of the release gate for today's release shape (packages by commit, pyproject/uv.lock/qsl.toml,
an override, a third package, per-service releases, bundles), against both sources: git clones and the
GitHub fake, built from the same history (tests/fixtures/today_shape.py)."""

from __future__ import annotations

from datetime import datetime, timezone

from release.gate.lock import lock_from_report, read_lock, write_lock
from tests.fixtures.today_shape import (
    HK,
    QPK,
    UES,
    git_requirement,
    platform_pyproject,
    qsl_toml,
    today_config,
    uv_lock,
)
from tests.gate.conftest import SEED, check

NOW = datetime(2026, 7, 20, 9, 30, tzinfo=timezone.utc)


def pins_of(today, ues=None, hk=None, qpk=None):
    return {QPK: qpk or today.q, UES: ues or today.u, **({} if hk is False else {HK: hk or today.h})}


def ibkr_with(today, **files):
    return today.platform_commit("ibkr", files)


def test_todays_shape_passes_with_the_override_warning_naming_both_commits(today, gate):
    report = gate(today_config(SEED, today))
    assert report.ok, report.render_text()
    warned = check(report, "ues-pins-qpk")
    assert warned.status == "passed" and len(warned.warnings) == 2
    assert f"pins QPK @{today.q_old[:7]}, the release's QPK is {today.q[:7]}" in warned.warnings[0]
    assert "InteractiveBrokersPlatform@" in warned.warnings[0] and "runs on a QPK it did not pin" in warned.warnings[0]
    assert check(report, "hk-pins-qpk").warnings and check(report, "hk-commit").status == "passed"
    # Schwab's own release is judged as a release of its own: its refs and its UES's QPK pin
    assert check(report, "ues-commit:schwab").status == "passed" and check(report, "ues-pins-qpk:schwab").warnings == ()
    assert "is on its default branch main" in check(report, "qpk-commit").message


def test_the_lock_records_every_packages_ref_and_commit_per_service_where_overridden(today, gate, tmp_path):
    report = gate(today_config(SEED, today))
    path = tmp_path / "Pulumi.prod.lock.json"
    write_lock(path, report, now=NOW)
    lock = read_lock(path, need_facts=True)
    assert {name: (ref.ref, ref.commit) for name, ref in lock.release.packages.items()} == {
        "quant-platform-kit": (today.q, today.q),
        "us-equity-strategies": (today.u, today.u),
        "hk-equity-strategies": (today.h, today.h),
    }
    assert lock.services["schwab"].release.packages["us-equity-strategies"].commit == today.u_schwab
    assert lock.services["ibkr"].release is None  # it installs the stack's release
    assert lock.release.kit_pins["us-equity-strategies"][0].ref == today.q_old
    assert lock.recorded_commit("QuantStrategyLab", QPK, today.q_schwab) == today.q_schwab


def test_a_commit_only_on_a_pull_request_branch_is_not_released(today, gate):
    report = gate(today_config(SEED, today, release={"packages": {**today.packages(), "quant-platform-kit": today.q_fork}}))
    result = check(report, "qpk-commit")
    assert result.status == "failed" and result.stage == "tag-qpk"
    assert f"commit {today.q_fork[:7]} is not on its default branch main" in result.message and "merge it first" in result.message
    assert "release.packages.quant-platform-kit" in result.message


def test_a_commit_that_exists_nowhere_fails_naming_the_field(today, gate):
    report = gate(today_config(SEED, today, release={"packages": {**today.packages(), "hk-equity-strategies": "5" * 40}}))
    result = check(report, "hk-commit")
    assert (
        result.status == "failed"
        and "has no commit 5555555" in result.message
        and "release.packages.hk-equity-strategies" in result.message
    )


def test_install_files_that_disagree_fail_naming_both_files_and_refs(today, gate):
    commit = ibkr_with(today, **{"uv.lock": uv_lock(pins_of(today, ues=today.u_schwab), today.q)})
    result = check(gate(today_config(SEED, today, {"ibkr": commit})), "platform-pins:ibkr")
    assert result.status == "failed" and result.stage == "platform-pins"
    assert f"install files disagree on us-equity-strategies (@{today.u_schwab[:7]}, @{today.u[:7]})" in result.message.replace(
        f"(@{today.u[:7]}, @{today.u_schwab[:7]})", f"(@{today.u_schwab[:7]}, @{today.u[:7]})"
    )
    assert f"uv.lock pins us-equity-strategies @{today.u_schwab[:7]}, release is {today.u[:7]}" in result.message


def test_a_lock_resolution_to_another_commit_fails(today, gate):
    commit = ibkr_with(today, **{"uv.lock": uv_lock(pins_of(today), today.q, resolved={QPK: today.q_old})})
    result = check(gate(today_config(SEED, today, {"ibkr": commit})), "platform-pins:ibkr")
    assert result.status == "failed" and f"resolved quant-platform-kit to {today.q_old[:7]}" in result.message


def test_qsl_toml_naming_another_ref_fails(today, gate):
    commit = ibkr_with(today, **{"qsl.toml": qsl_toml("InteractiveBrokersPlatform", pins_of(today, hk=today.q_old), "2026.07.4")})
    result = check(gate(today_config(SEED, today, {"ibkr": commit})), "platform-pins:ibkr")
    assert result.status == "failed" and "qsl.toml [qsl.requires] pins hk-equity-strategies" in result.message


def test_a_package_of_the_release_a_platform_does_not_install_is_reported_not_failed(today, gate):
    pins = pins_of(today, hk=False)
    commit = ibkr_with(
        today,
        **{
            "pyproject.toml": platform_pyproject(pins, today.q),
            "uv.lock": uv_lock(pins, today.q),
            "qsl.toml": qsl_toml("InteractiveBrokersPlatform", pins, "2026.07.4"),
        },
    )
    result = check(gate(today_config(SEED, today, {"ibkr": commit})), "platform-pins:ibkr")
    assert result.status == "passed" and any("does not install hk-equity-strategies of the release" in w for w in result.warnings)


def test_a_required_package_a_platform_does_not_install_fails(today, gate):
    pins = {QPK: today.q, HK: today.h}
    commit = ibkr_with(
        today,
        **{"pyproject.toml": platform_pyproject(pins, today.q), "uv.lock": uv_lock(pins, today.q), "qsl.toml": qsl_toml("I", pins, "x")},
    )
    result = check(gate(today_config(SEED, today, {"ibkr": commit})), "platform-pins:ibkr")
    assert result.status == "failed" and "does not pin us-equity-strategies" in result.message


def test_a_branch_pin_of_the_third_package_is_refused(today, gate):
    branch = "hk-low-vol-dividend-quality-20260603"  # as IBKR ced5db4 pinned it
    pins = pins_of(today, hk=branch)
    commit = ibkr_with(
        today,
        **{"pyproject.toml": platform_pyproject(pins, today.q), "uv.lock": uv_lock(pins, today.q, resolved={HK: today.h})},
    )
    report = gate(today_config(SEED, today, {"ibkr": commit}))
    refs = check(report, "pin-refs")
    assert refs.status == "failed" and f"hk-equity-strategies @{branch} (a branch or unknown ref)" in refs.message
    assert check(report, "platform-pins:ibkr").status == "failed"


def test_every_quantstrategylab_git_pin_passes_pin_refs_tracked_or_not(today, gate):
    plugins = "quant-strategy-plugins @ git+https://github.com/QuantStrategyLab/QuantStrategyPlugins.git@main"
    commit = ibkr_with(
        today, **{"pyproject.toml": platform_pyproject(pins_of(today), today.q).replace('  "flask",\n', f'  "flask",\n  "{plugins}",\n')}
    )
    refs = check(gate(today_config(SEED, today, {"ibkr": commit})), "pin-refs")
    assert refs.status == "failed" and "quant-strategy-plugins @main (a branch or unknown ref)" in refs.message


def test_uv_sources_may_not_point_a_package_elsewhere(today, gate):
    sources = (
        f'\n[tool.uv.sources]\nquant-platform-kit = {{ git = "https://github.com/someone/QuantPlatformKit.git", rev = "{today.q}" }}\n'
    )
    commit = ibkr_with(today, **{"pyproject.toml": platform_pyproject(pins_of(today), today.q, extra=sources)})
    report = gate(today_config(SEED, today, {"ibkr": commit}))
    result = check(report, "platform-pins:ibkr")
    assert result.status == "failed" and "[tool.uv.sources] points quant-platform-kit at someone/QuantPlatformKit" in result.message
    assert "from someone/QuantPlatformKit, not QuantStrategyLab/QuantPlatformKit" in check(report, "pin-refs").message


def test_requirement_includes_and_constraints_are_read(today, gate):
    files = {
        "pyproject.toml": None,
        "uv.lock": None,
        "qsl.toml": None,
        "requirements.txt": "flask\n-r requirements/base.txt\n--constraint=constraints.txt\n",
        "requirements/base.txt": f"{git_requirement(QPK, today.q)}\n{git_requirement(UES, today.u)}\n{git_requirement(HK, today.h)}\n",
        "constraints.txt": f"{git_requirement(UES, today.u_schwab)}\n",
    }
    report = gate(today_config(SEED, today, {"ibkr": ibkr_with(today, **files)}))
    result = check(report, "platform-pins:ibkr")
    assert result.status == "failed"
    assert f"constraints.txt (-c from requirements.txt) pins us-equity-strategies @{today.u_schwab[:7]}" in result.message
    outside = ibkr_with(today, **{**files, "requirements.txt": "-r ../elsewhere.txt\n"})
    result = check(gate(today_config(SEED, today, {"ibkr": outside})), "platform-pins:ibkr")
    assert result.status == "failed" and "outside the repository" in result.message


def test_optional_dependency_and_dependency_group_pins_are_read(today, gate):
    extra = (
        f'\n[project.optional-dependencies]\nresearch = ["{git_requirement(UES, "main")}"]\n'
        f'\n[dependency-groups]\ndev = ["{git_requirement(HK, today.h[:10])}", {{include-group = "research"}}]\n'
    )
    pyproject = platform_pyproject(pins_of(today), today.q).replace("\n[tool.uv]", extra + "\n[tool.uv]")
    refs = check(gate(today_config(SEED, today, {"ibkr": ibkr_with(today, **{"pyproject.toml": pyproject})})), "pin-refs")
    assert "[project.optional-dependencies] research pins us-equity-strategies @main" in refs.message
    assert "[dependency-groups] dev pins hk-equity-strategies" in refs.message and "a short sha" in refs.message


def test_without_the_override_another_qpk_fails_as_pip_would(today, gate):
    pins = pins_of(today)
    commit = today.platform_commit("longbridge", {"pyproject.toml": platform_pyproject(pins, None), "uv.lock": uv_lock(pins, None)})
    report = gate(today_config(SEED, today, {"longbridge": commit}))
    result = check(report, "ues-pins-qpk")
    assert result.status == "failed" and result.stage == "tag-ues"
    assert "LongBridgePlatform@" in result.message and "do not override QPK: pip would refuse it, ResolutionImpossible" in result.message
    assert check(report, "order").status == "failed"


def test_order_against_the_lock_by_history_forward_rollback_and_diverged(today, gate):
    lock = lock_from_report(gate(today_config(SEED, today)), NOW)
    forward = today.world.commit(QPK, {"VERSION": "next\n"}, parent=today.q)
    moved = check(gate(today_config(SEED, today, release={"packages": {**today.packages(), "quant-platform-kit": forward}}), lock), "order")
    assert "not older than the lock" in moved.message
    back = gate(today_config(SEED, today, release={"packages": {**today.packages(), "quant-platform-kit": today.q_schwab}}), lock)
    order = check(back, "order")
    assert back.rollback and f"ROLLBACK from the lock at 2026-07-20T09:30:00Z: QPK {today.q[:7]} -> {today.q_schwab[:7]}" in order.message
    aside = check(
        gate(today_config(SEED, today, release={"packages": {**today.packages(), "quant-platform-kit": today.q_fork}}), lock), "order"
    )
    assert aside.status == "failed" and "diverged histories" in aside.message


def test_a_bundle_gives_the_release_its_refs_and_the_lock_records_where_it_was_read(today, gate, tmp_path):
    config = today_config(SEED, today, release={"bundle": "2026.07.4"}, schwab={"bundle": "2026.08.0"})
    report = gate(config)
    assert report.ok, report.render_text()
    read = check(report, "release-bundle")
    assert "bundle 2026.07.4 read from QuantRuntimeSettings@" in read.message and "compat/bundles/2026.07.4.toml" in read.message
    assert report.config.release.refs == today.packages() and report.config.release_for("schwab").refs == today.schwab_packages()
    write_lock(tmp_path / "l.json", report, now=NOW)
    bundle = read_lock(tmp_path / "l.json").release.bundle
    assert (bundle.bundle, bundle.repo, bundle.path) == ("2026.07.4", "QuantRuntimeSettings", "compat/bundles/2026.07.4.toml")


def test_a_bundle_that_does_not_exist_fails_at_its_stage(today, gate):
    report = gate(today_config(SEED, today, release={"bundle": "2026.01.0"}))
    result = check(report, "release-bundle")
    assert result.status == "failed" and result.stage == "release-bundle" and "compat/bundles/2026.01.0.toml" in result.message
    assert (
        check(report, "platform-pins:ibkr").status == "failed"
        and "not checked: release-bundle failed" in check(report, "platform-pins:ibkr").message
    )


def test_a_platform_on_another_bundle_is_reported_and_its_pins_decide(today, gate):
    pins = pins_of(today)
    commit = ibkr_with(today, **{"qsl.toml": qsl_toml("InteractiveBrokersPlatform", pins, "2026.06.9")})
    report = gate(today_config(SEED, today, {"ibkr": commit}, release={"bundle": "2026.07.4"}))
    result = check(report, "platform-pins:ibkr")
    assert result.status == "passed"
    assert any("qsl.toml names bundle 2026.06.9, the release is bundle 2026.07.4" in w for w in result.warnings)


def test_the_plans_next_steps_name_the_real_cause_from_the_checks_stage(today, gate):
    from release.cutover.plan import build_plan

    report = gate(today_config(SEED, today, release={"packages": {**today.packages(), "quant-platform-kit": today.q_fork}}))
    steps = [step for step in build_plan(report.config, report, {}, report.facts.profiles).steps if step.service is None]
    assert steps[0].stage == "tag-qpk" and "qpk-commit:" in steps[0].action and "merge it first" in steps[0].action
    report = gate(today_config(SEED, today, release={"bundle": "2026.01.0"}))
    steps = [step for step in build_plan(report.config, report, {}, report.facts.profiles).steps if step.service is None]
    assert steps[0].stage == "release-bundle" and steps[0].action.startswith("fix the bundle 2026.01.0: release-bundle:")
