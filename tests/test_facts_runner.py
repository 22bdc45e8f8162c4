"""release/gate/facts_runner.py and facts_environment.py: the probe run in an isolated, bounded child over
plain directories (today's computed registries, the seed's literal ones, hostile ones), and the
environment built from a platform commit's own lock when its registry imports a third-party package."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from release.gate.facts_environment import ProbeResult, filtered_requirements, probe_platform
from release.gate.facts_runner import FactsRunError, MissingModule, ProbeOutput, network_isolation, run_probe
from tests.fixtures.profile_sources import ADAPTERS, BUNDLED_CONFIG, CAPABILITIES, SEED_ALLOWLISTS, V13_PROFILES
from tests.fixtures.strategy_packages import (
    hk_files,
    platform_today_files,
    qpk_files,
    registry_seed,
    registry_today,
    ues_seed_files,
    ues_today_files,
    write_tree,
    write_wheel,
)

UES_NAMES = ("quant-platform-kit", "us-equity-strategies", "hk-equity-strategies")


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("packages")
    return {
        "qpk": write_tree(root / "qpk", qpk_files()) / "src",
        "ues": write_tree(root / "ues", ues_today_files()) / "src",
        "hk": write_tree(root / "hk", hk_files()) / "src",
        "ues-seed": write_tree(
            root / "ues-seed", ues_seed_files(V13_PROFILES, ADAPTERS["v0.7.13"], {"qqq_tech_enhancement": BUNDLED_CONFIG})
        )
        / "src",
    }


def registry_body(platform: str, **options: object) -> str:
    """Today's registry without its `from __future__` line, so a test can put code before it."""
    return registry_today(platform, **options).replace("from __future__ import annotations\n", "")


def today(packages: dict[str, Path]) -> list[Path]:
    return [packages["qpk"], packages["ues"], packages["hk"]]


def probe(platform: str, root: Path, roots: list[Path], seconds: float = 30.0) -> ProbeOutput:
    output = run_probe(platform, root, roots, deadline=time.monotonic() + seconds)
    assert isinstance(output, ProbeOutput)
    return output


def enabled(output: ProbeOutput) -> set[str]:
    return {row.canonical_profile for row in output.profiles if row.enabled}


def test_today_registries_compute_enabled_profiles_by_running(tmp_path: Path, packages: dict[str, Path]) -> None:
    ibkr = probe("ibkr", write_tree(tmp_path / "ibkr", platform_today_files("ibkr")), today(packages))
    schwab = probe("schwab", write_tree(tmp_path / "schwab", platform_today_files("schwab", hk=False)), today(packages))
    longbridge = probe("longbridge", write_tree(tmp_path / "lb", platform_today_files("longbridge")), today(packages))
    assert ibkr.method == "describe"
    # (UES enabled | HK enabled) - excluded, intersected with what the capability matrix admits
    assert enabled(ibkr) == {
        "global_etf_rotation", "tqqq_growth_income", "soxl_soxx_trend_income", "us_equity_combo_leveraged", "hk_global_etf_tactical_rotation",
    }  # fmt: skip
    assert enabled(longbridge) == enabled(ibkr) | {"tech_communication_pullback_enhancement"}
    assert enabled(schwab) == {"tqqq_growth_income", "soxl_soxx_trend_income", "us_equity_combo_leveraged"}  # no HK, no snapshot input
    hk = next(row for row in ibkr.profiles if row.canonical_profile == "hk_global_etf_tactical_rotation")
    assert (hk.domain, hk.display_name) == ("hk_equity", "HK Global ETF Tactical Rotation")
    assert ibkr.aliases is not None and ibkr.aliases["hk_etf_tactical"] == "hk_global_etf_tactical_rotation"
    rotation = next(row for row in ibkr.profiles if row.canonical_profile == "global_etf_rotation")
    assert rotation.describe is not None and rotation.describe.requires_snapshot_manifest_path is True
    assert rotation.describe.snapshot_contract_version == "global_etf_rotation.feature_snapshot.v2"
    combo = next(row for row in ibkr.profiles if row.canonical_profile == "us_equity_combo_leveraged")
    assert combo.describe is not None and combo.describe.config_source_policy == "env_only"
    assert "research_only_rotation" not in {row.canonical_profile for row in ibkr.profiles}


def test_seed_registries_are_read_through_the_catalog_and_adapters(tmp_path: Path, packages: dict[str, Path]) -> None:
    modes, inputs = CAPABILITIES["ibkr"]
    root = write_tree(tmp_path / "ibkr", {"strategy_registry.py": registry_seed("ibkr", SEED_ALLOWLISTS["ibkr"], modes, inputs)})
    write_tree(root, {BUNDLED_CONFIG: "{}\n"})
    output = probe("ibkr", root, [packages["qpk"], packages["ues-seed"]])
    assert output.method == "catalog"
    assert enabled(output) == set(SEED_ALLOWLISTS["ibkr"])
    tech = next(row for row in output.profiles if row.canonical_profile == "qqq_tech_enhancement")
    assert tech.adapter is not None and tech.adapter.require_snapshot_manifest is True
    assert tech.adapter.snapshot_contract_version == "tech_pullback_cash_buffer.feature_snapshot.v1"
    assert (tech.bundled_config, tech.bundled_config_present, tech.required_inputs) == (BUNDLED_CONFIG, True, ["feature_snapshot"])
    assert output.aliases is not None and output.aliases["tech_pullback_cash_buffer"] == "qqq_tech_enhancement"
    # LongBridge at the seed has no research/ tree: the catalog's config is not bundled there
    modes, inputs = CAPABILITIES["longbridge"]
    lb = tmp_path / "lb"
    write_tree(lb, {"strategy_registry.py": registry_seed("longbridge", SEED_ALLOWLISTS["longbridge"], modes, inputs)})
    tech = next(
        row
        for row in probe("longbridge", lb, [packages["qpk"], packages["ues-seed"]]).profiles
        if row.canonical_profile == "qqq_tech_enhancement"
    )
    assert tech.bundled_config_present is False


# -- hostile registries: each fails closed within its bound ----------------------------------------------


def hostile(tmp_path: Path, body: str) -> Path:
    return write_tree(tmp_path / "hostile", {"strategy_registry.py": f"import os, sys, time, json, socket\n{body}\n"})


def expect_failure(tmp_path: Path, packages: dict[str, Path], body: str, seconds: float = 20.0) -> tuple[FactsRunError, float]:
    root = hostile(tmp_path, body)
    start = time.monotonic()
    with pytest.raises(FactsRunError) as caught:
        run_probe("ibkr", root, today(packages), deadline=start + seconds)
    return caught.value, time.monotonic() - start


def test_a_registry_that_hangs_is_killed_at_the_deadline_with_everything_it_started(tmp_path: Path, packages: dict[str, Path]) -> None:
    beat = tmp_path / "beat"
    # a grandchild in its own session (out of the probe's process group) that keeps writing a heartbeat
    body = (
        "import subprocess\n"
        f"subprocess.Popen(['sh', '-c', 'while true; do date +%s%N > {beat}; sleep 0.05; done'], start_new_session=True)\n"
        "while True:\n    time.sleep(1)"
    )
    error, took = expect_failure(tmp_path, packages, body, seconds=2)
    assert "run ibkr's registry" in str(error) and "did not finish before its deadline (killed)" in str(error)
    assert took < 10
    if network_isolation() == "unshare":  # the PID namespace dies with the probe, grandchildren included
        time.sleep(0.3)
        last = beat.read_text()
        time.sleep(0.5)
        assert beat.read_text() == last


def test_a_registry_that_prints_without_end_is_killed_at_the_output_bound(tmp_path: Path, packages: dict[str, Path]) -> None:
    error, took = expect_failure(tmp_path, packages, "while True:\n    sys.stderr.write('x' * 65536)")
    assert "printed more than" in str(error) and "bytes on stderr (killed)" in str(error) and took < 20
    # and through the probe's own output channel: every descriptor the child holds
    flood = "while True:\n    for fd in range(3, 12):\n        try:\n            os.write(fd, b'[' * 65536)\n        except OSError:\n            pass"
    error, took = expect_failure(tmp_path, packages, flood)
    assert "bytes on stdout (killed)" in str(error) and took < 20


def test_a_registry_that_reads_the_environment_finds_no_credential(
    tmp_path: Path, packages: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "GITHUB_TOKEN": "ghp_" + "s" * 36,
        "GOOGLE_APPLICATION_CREDENTIALS": "/root/adc.json",
        "CLOUDSDK_AUTH_ACCESS_TOKEN": "ya29.secret",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "PYTHONPATH": "/somewhere/else",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    dump = tmp_path / "seen.json"
    body = (
        "seen = {'environ': dict(os.environ), 'home': os.path.expanduser('~'), 'path': sys.path, 'cwd': os.getcwd()}\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n"
        "    seen['network'] = 'connected'\n"
        "except OSError as error:\n"
        "    seen['network'] = repr(error)\n"
        f"open({str(dump)!r}, 'w').write(json.dumps(seen))\n"
        "raise SystemExit(7)"
    )
    try:
        error, _ = expect_failure(tmp_path, packages, body)
    finally:
        listener.close()
    assert "exited with status 7" in str(error)
    seen = json.loads(dump.read_text())
    text = json.dumps(seen["environ"])
    for name, value in secrets.items():
        assert name not in seen["environ"] and value not in text
    assert not any(name.startswith(("GOOGLE", "CLOUDSDK", "AWS", "GITHUB", "PYTHON")) and name not in (
        "PYTHONIOENCODING", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED") for name in seen["environ"])  # fmt: skip
    assert seen["home"] != str(Path.home()) and "cutover-probe-" in seen["home"] and seen["cwd"] == seen["home"]
    assert "/somewhere/else" not in seen["path"] and not any("site-packages" in entry for entry in seen["path"])
    assert seen["network"] != "connected"
    if network_isolation() == "proxy":
        assert seen["environ"]["HTTPS_PROXY"] == "http://127.0.0.1:9"


def test_a_registry_that_raises_names_the_step_and_the_escaped_stderr_tail(tmp_path: Path, packages: dict[str, Path]) -> None:
    error, _ = expect_failure(tmp_path, packages, "raise RuntimeError('registry broke\\x1b[2J\\nPlan: can proceed')")
    message = str(error)
    assert message.startswith("run ibkr's registry: exited with status 1; stderr ends: ")
    assert "RuntimeError: registry broke\\x1b[2J\\nPlan: can proceed" in message and "\x1b" not in message and "\n" not in message


def test_a_registry_that_prints_malformed_json_fails_closed(tmp_path: Path, packages: dict[str, Path]) -> None:
    # written into the probe's own output channel, so the parent reads garbage before the document
    corrupt = "for fd in range(3, 12):\n    try:\n        os.write(fd, b'{not json')\n    except OSError:\n        pass\n" + registry_body(
        "ibkr"
    )
    error, _ = expect_failure(tmp_path, packages, corrupt)
    assert str(error).startswith("read the probe's output: not one JSON document")
    # well-formed JSON of the wrong shape: a status row the model refuses (never quoted back)
    wrong = (
        registry_body("ibkr")
        + "\n_real = get_platform_profile_status_matrix\nget_platform_profile_status_matrix = lambda: [dict(r, enabled='yes') for r in _real()]\n"
    )
    error, _ = expect_failure(tmp_path, packages, wrong)
    assert "read the probe's output: not the probe's document" in str(error) and "enabled" in str(error)
    # a document for another platform
    other = (
        registry_body("ibkr")
        + "\n_real = get_platform_profile_status_matrix\nget_platform_profile_status_matrix = lambda: [dict(r, platform='schwab') for r in _real()]\n"
    )
    error, _ = expect_failure(tmp_path, packages, other)
    assert "row is for platform 'schwab'" in str(error)


def test_a_registry_whose_profile_cannot_be_described_records_that_profile_only(tmp_path: Path, packages: dict[str, Path]) -> None:
    extra = (
        "\n_describe = describe_platform_runtime_requirements\n"
        "def describe_platform_runtime_requirements(profile, *, platform_id):\n"
        "    if profile == 'soxl_soxx_trend_income':\n        raise ValueError('no adapter today')\n"
        "    return _describe(profile, platform_id=platform_id)\n"
    )
    output = probe("ibkr", write_tree(tmp_path / "p", {"strategy_registry.py": registry_today("ibkr", extra=extra)}), today(packages))
    rows = {row.canonical_profile: row for row in output.profiles}
    assert rows["soxl_soxx_trend_income"].error == "ValueError: no adapter today" and rows["soxl_soxx_trend_income"].describe is None
    assert rows["tqqq_growth_income"].error is None and rows["tqqq_growth_income"].describe is not None


# -- environments from the platform commit's lock ----------------------------------------------------------


def needs_dep(platform: str) -> str:
    return "import facts_dep\nassert facts_dep.VALUE == 42\n" + registry_body(platform)


def test_a_missing_third_party_module_is_named_and_without_a_lock_fails_closed(tmp_path: Path, packages: dict[str, Path]) -> None:
    root = write_tree(tmp_path / "p", {"strategy_registry.py": needs_dep("ibkr")})
    assert run_probe("ibkr", root, today(packages), deadline=time.monotonic() + 20) == MissingModule(probe=1, missing_module="facts_dep")
    with pytest.raises(FactsRunError, match="build the environment: the platform commit has neither uv.lock"):
        probe_platform(
            "ibkr", root, today(packages), platform_commit="a" * 40, excluded=UES_NAMES, cache_root=tmp_path / "cache",
            deadline=time.monotonic() + 20,
        )  # fmt: skip


def test_environment_from_requirements_txt_is_built_once_and_reused(tmp_path: Path, packages: dict[str, Path]) -> None:
    wheel = write_wheel(tmp_path / "wheels", "facts-dep", "1.0", {"facts_dep/__init__.py": "VALUE = 42\n"})
    requirements = (
        "# pinned by the platform\n"
        f"facts-dep @ file://{wheel}\n"
        "us-equity-strategies @ git+https://github.com/QuantStrategyLab/UsEquityStrategies.git@v0.7.13\n"
    )
    root = write_tree(tmp_path / "p", {"strategy_registry.py": needs_dep("ibkr"), "requirements.txt": requirements})
    cache = tmp_path / "cache"

    def run(commit: str = "b" * 40) -> tuple[ProbeResult, float]:
        start = time.monotonic()
        result = probe_platform(
            "ibkr", root, today(packages), platform_commit=commit, excluded=UES_NAMES, cache_root=cache, deadline=start + 120
        )
        return result, time.monotonic() - start

    first, _ = run()
    assert first.environment == "requirements.txt" and first.lock_sha256 is not None
    assert "tqqq_growth_income" in enabled(first.output)
    built = sorted(path.name for path in cache.iterdir() if path.is_dir() and not path.name.startswith((".", "uv-")))
    assert built == [f"{'b' * 40}-{first.lock_sha256[:16]}"]
    marker = (cache / built[0] / "environment.json").stat().st_mtime_ns
    again, _ = run()
    assert again == first and (cache / built[0] / "environment.json").stat().st_mtime_ns == marker  # reused, not rebuilt
    run("c" * 40)  # another commit never reuses this one's environment
    assert len([p for p in cache.iterdir() if p.is_dir() and not p.name.startswith((".", "uv-"))]) == 2


def test_environment_from_uv_lock_with_uv_sync_frozen(tmp_path: Path, packages: dict[str, Path]) -> None:
    from uv import find_uv_bin

    wheel = write_wheel(tmp_path / "wheels", "facts-dep", "1.0", {"facts_dep/__init__.py": "VALUE = 42\n"})
    pyproject = (
        '[project]\nname = "platform"\nversion = "0"\nrequires-python = ">=3.11"\ndependencies = ["facts-dep"]\n\n'
        f'[tool.uv.sources]\nfacts-dep = {{ path = "{wheel}" }}\n'
    )
    root = write_tree(tmp_path / "p", {"strategy_registry.py": needs_dep("ibkr"), "pyproject.toml": pyproject})
    subprocess.run(
        [str(find_uv_bin()), "lock", "--offline", "--quiet"],
        cwd=root,
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    result = probe_platform(
        "ibkr", root, today(packages), platform_commit="d" * 40, excluded=UES_NAMES, cache_root=tmp_path / "cache",
        deadline=time.monotonic() + 120,
    )  # fmt: skip
    assert result.environment == "uv.lock" and "hk_global_etf_tactical_rotation" in enabled(result.output)
    # a lock whose wheel hash does not match the wheel: uv refuses to install it, and the facts fail closed
    lock = (root / "uv.lock").read_text()
    assert 'hash = "sha256:' in lock
    write_tree(root, {"uv.lock": re.sub(r'hash = "sha256:[0-9a-f]{64}"', 'hash = "sha256:' + "0" * 64 + '"', lock)})
    with pytest.raises(FactsRunError, match=r"build the environment \(uv sync --frozen\): exited with status"):
        probe_platform(
            "ibkr", root, today(packages), platform_commit="d" * 40, excluded=UES_NAMES, cache_root=tmp_path / "cache",
            deadline=time.monotonic() + 60,
        )  # fmt: skip


def test_requirements_are_filtered_by_package_name_and_options_refused() -> None:
    text = "flask\nquant-platform-kit @ git+https://github.com/QuantStrategyLab/QuantPlatformKit.git@v0.7.10\nUS_Equity.Strategies==1\n"
    assert filtered_requirements(text, UES_NAMES) == "flask\n"
    with pytest.raises(FactsRunError, match="line 1: option '--index-url' is not supported"):
        filtered_requirements("--index-url https://example.invalid/simple\nflask\n", UES_NAMES)


def test_the_deadline_bounds_concurrent_runs(tmp_path: Path, packages: dict[str, Path]) -> None:
    """Two hanging registries in parallel threads: both end at their deadline (no shared state between runs)."""
    root = hostile(tmp_path, "while True:\n    time.sleep(1)")
    errors: list[str] = []

    def one() -> None:
        try:
            run_probe("ibkr", root, today(packages), deadline=time.monotonic() + 1.5)
        except FactsRunError as error:
            errors.append(str(error))

    threads = [threading.Thread(target=one) for _ in range(2)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(errors) == 2 and all("deadline" in error for error in errors) and time.monotonic() - start < 12
