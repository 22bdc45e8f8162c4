import pytest

from release.gate.pins import (
    PinFileError,
    classify_ref,
    pin_from_requirement,
    pins_from_pyproject,
    pins_from_requirements_txt,
    pins_from_uv_lock,
)

SHA = "ca6cae89db0a62ae5a6e7508a47a80ffdcc0efe4"
URL = "git+https://github.com/QuantStrategyLab/QuantPlatformKit.git"


@pytest.mark.parametrize(
    "ref, kind",
    [
        ("v0.7.10", "tag"),
        (SHA, "sha"),
        ("ca6cae8", "short-sha"),
        ("main", "branch"),
        ("codex/fix-pins", "branch"),
        ("fix-123", "branch"),
        ("", "no-ref"),
        ("0.7.10", "branch"),
    ],
)
def test_classify_ref(ref, kind):
    assert classify_ref(ref) == kind


def test_requirement_with_tag_names_owner_repo_and_ref():
    pin = pin_from_requirement(f"quant_platform_kit @ {URL}@v0.7.10", "requirements.txt")
    assert (pin.package, pin.owner, pin.repo, pin.ref, pin.kind) == (
        "quant-platform-kit",
        "QuantStrategyLab",
        "QuantPlatformKit",
        "v0.7.10",
        "tag",
    )


def test_fork_url_and_ssh_url_and_non_github_host():
    fork = pin_from_requirement("us-equity-strategies @ git+https://github.com/someone/UsEquityStrategies.git@v0.7.13", "f")
    assert (fork.owner, fork.repo) == ("someone", "UsEquityStrategies") and not fork.is_canonical("QuantStrategyLab", "UsEquityStrategies")
    ssh = pin_from_requirement(f"us-equity-strategies @ git+ssh://git@github.com/QuantStrategyLab/UsEquityStrategies.git@{SHA}", "f")
    assert ssh.kind == "sha" and ssh.is_canonical("QuantStrategyLab", "UsEquityStrategies")
    other = pin_from_requirement("us-equity-strategies @ git+https://gitlab.com/QuantStrategyLab/UsEquityStrategies.git@v0.7.13", "f")
    assert other.owner is None and not other.is_canonical("QuantStrategyLab", "UsEquityStrategies")


def test_untracked_and_index_requirements():
    assert pin_from_requirement("flask==3.0", "f") is None
    assert pin_from_requirement("quant-platform-kit==0.7.10", "f").kind == "not-git"


def test_requirements_txt_skips_comments_options_and_joins_continuations():
    text = (
        "# quant-platform-kit @ git+https://github.com/x/y.git@old\n"
        "-r base.txt\n"
        f"quant-platform-kit @ \\\n  {URL}@v0.7.10  # the bundle\n"
        "us-equity-strategies @ git+https://github.com/QuantStrategyLab/UsEquityStrategies.git@main\n"
    )
    pins = pins_from_requirements_txt(text)
    assert [(p.package, p.ref, p.kind) for p in pins] == [
        ("quant-platform-kit", "v0.7.10", "tag"),
        ("us-equity-strategies", "main", "branch"),
    ]


def test_unparseable_line_naming_a_tracked_package_fails_closed():
    pins = pins_from_requirements_txt("quant-platform-kit @@ nonsense\n")
    assert [p.kind for p in pins] == ["invalid"]


def test_pyproject_dependencies_and_uv_overrides():
    text = f"""
[project]
name = "p"
dependencies = ["quant-platform-kit @ {URL}@{SHA}", "pandas"]
[tool.uv]
override-dependencies = ["quant-platform-kit @ {URL}@v0.7.9"]
"""
    pins = pins_from_pyproject(text)
    assert [(p.file, p.ref) for p in pins] == [
        ("pyproject.toml [project].dependencies", SHA),
        ("pyproject.toml [tool.uv] override-dependencies", "v0.7.9"),
    ]


def test_uv_lock_git_source_carries_requested_ref_and_resolved_commit():
    text = f"""
version = 1
[[package]]
name = "quant-platform-kit"
version = "0.7.10"
source = {{ git = "https://github.com/QuantStrategyLab/QuantPlatformKit.git?rev={SHA}#{SHA}" }}
[[package]]
name = "us-equity-strategies"
version = "0.7.13"
source = {{ git = "https://github.com/QuantStrategyLab/UsEquityStrategies.git?branch=main#{SHA}" }}
[[package]]
name = "pandas"
version = "2.2.0"
source = {{ registry = "https://pypi.org/simple" }}
"""
    qpk, ues = pins_from_uv_lock(text)
    assert (qpk.kind, qpk.ref, qpk.resolved, qpk.repo) == ("sha", SHA, SHA, "QuantPlatformKit")
    assert (ues.kind, ues.ref) == ("branch", "main")


def test_malformed_toml_raises_pin_file_error():
    with pytest.raises(PinFileError, match="uv.lock is not valid TOML"):
        pins_from_uv_lock("[[package]\nname=")
    with pytest.raises(PinFileError, match="dependencies"):
        pins_from_pyproject('[project]\ndependencies = "quant-platform-kit"\n')


def test_every_install_file_and_section_is_read_with_its_label():
    from release.gate.pins import read_install_files
    from tests.fixtures.today_shape import HK, QPK, UES, platform_pyproject, qsl_toml, uv_lock

    pins = {QPK: "a" * 40, UES: "b" * 40, HK: "c" * 40}
    files = {
        "pyproject.toml": platform_pyproject(pins, "a" * 40),
        "uv.lock": uv_lock(pins, "a" * 40),
        "qsl.toml": qsl_toml("InteractiveBrokersPlatform", pins, "2026.07.4"),
    }
    read = read_install_files(files.get, "QuantStrategyLab")
    assert read.files == ("pyproject.toml", "uv.lock", "qsl.toml") and read.bundle == "2026.07.4"
    assert read.overridden == frozenset({"quant-platform-kit"})
    assert {pin.file for pin in read.of("quant-platform-kit")} == {
        "pyproject.toml [project].dependencies",
        "pyproject.toml [tool.uv] override-dependencies",
        "uv.lock",
        "uv.lock requires-dist of platform",
        "uv.lock [manifest] overrides",
        "qsl.toml [qsl.requires]",
    }
    assert all(pin.ref == "a" * 40 and pin.kind == "sha" for pin in read.of("quant-platform-kit"))
    assert next(pin for pin in read.of("hk-equity-strategies") if pin.file == "uv.lock").resolved == "c" * 40


def test_a_uv_source_that_is_not_git_is_no_release_and_a_url_keeps_no_credential():
    from release.gate.pins import pins_from_pyproject

    text = '[project]\nname = "p"\n[tool.uv.sources]\nquant-platform-kit = { path = "../QuantPlatformKit", editable = true }\n'
    (pin,) = pins_from_pyproject(text)
    assert pin.kind == "not-git" and pin.file == "pyproject.toml [tool.uv.sources]" and "../QuantPlatformKit" in pin.ref
    (url,) = pins_from_pyproject('[project]\ndependencies = ["quant-platform-kit @ https://bot:pw@example.com/q.whl"]\n')
    assert url.kind == "not-git" and "bot:pw" not in url.ref and "//example.com/q.whl" in url.ref


def test_requirement_includes_are_relative_to_the_including_file_and_stay_in_the_tree():
    from release.gate.pins import PinFileError, read_install_files

    files = {
        "requirements.txt": "-r deps/base.txt\n",
        "deps/base.txt": "-c ../pins.txt\n",
        "pins.txt": f"quant-platform-kit @ {URL}@v0.7.10\n",
    }
    (pin,) = read_install_files(files.get, "QuantStrategyLab").pins
    assert pin.file == "pins.txt (-c from deps/base.txt)" and pin.ref == "v0.7.10"
    for include in ("-r https://example.com/r.txt", "-r /etc/passwd", "-r ../../x.txt", "-r missing.txt"):
        with pytest.raises(PinFileError):
            read_install_files({"requirements.txt": include + "\n"}.get, "QuantStrategyLab")
