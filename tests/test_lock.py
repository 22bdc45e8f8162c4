import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from release.gate.checks import run_gate
from release.gate.git_source import GitSource
from release.gate.lock import LockError, lock_path, read_lock, render_lock, write_lock
from tests.fixtures.git_repos import prod_config
from tests.fixtures.github_fake import IBKR, QPK
from tests.fixtures.old_locks import old_schema

NOW = datetime(2026, 4, 20, 9, 30, tzinfo=timezone.utc)


def passing(seed, **bundle):
    return run_gate(prod_config(seed.target, **bundle), GitSource(seed.root))


def test_lock_path_sits_beside_the_stack_file():
    assert lock_path(Path("/x/Pulumi.prod.yaml")) == Path("/x/Pulumi.prod.lock.json")
    assert lock_path(Path("stacks/staging.yml")) == Path("stacks/staging.lock.json")


def test_write_then_read_round_trips_and_is_deterministic(seed_repos, tmp_path):
    path = tmp_path / "Pulumi.prod.lock.json"
    lock = write_lock(path, passing(seed_repos), now=NOW)
    text = path.read_text()
    assert text.endswith("}\n") and read_lock(path) == lock
    data = json.loads(text)
    assert list(data) == sorted(data) and data["locked_at"] == "2026-04-20T09:30:00Z"
    assert data["release"]["packages"]["quant-platform-kit"] == {"repo": QPK, "ref": "v0.7.10", "commit": seed_repos.qpk_tags["v0.7.10"]}
    assert data["release"]["kit_pins"]["us-equity-strategies"][0]["ref"] == "v0.7.10" and data["schema_version"] == 4
    assert len(data["lock_sha256"]) == 64 and data["refs"][f"QuantStrategyLab/{QPK}"]["v0.7.10"] == seed_repos.qpk_tags["v0.7.10"]
    facts = data["profile_facts"]
    ibkr = facts["runs"][facts["services"]["ibkr"]]
    assert (ibkr["repo"], ibkr["commit"], ibkr["platform"]) == (IBKR, seed_repos.target[IBKR], "ibkr")
    assert [(p["name"], p["ref"], p["commit"]) for p in ibkr["packages"]] == [
        ("quant-platform-kit", "v0.7.10", seed_repos.qpk_tags["v0.7.10"]),
        ("us-equity-strategies", "v0.7.13", seed_repos.ues_tags["v0.7.13"]),
    ]
    # how they were proved: the functions, the environment, the isolation, the probe
    assert ibkr["run"]["environment"] == "sources" and ibkr["run"]["functions"][0] == "get_platform_profile_status_matrix"
    assert ibkr["run"]["isolation"] in ("unshare", "proxy") and len(ibkr["run"]["probe_sha256"]) == 64
    assert facts["services"]["longbridge-hk"] == facts["services"]["longbridge-sg"] and len(facts["runs"]) == 3
    assert len(data["profile_facts_sha256"]) == 64
    assert data["services"]["ibkr"]["commit"] == seed_repos.target[IBKR]
    assert write_lock(path, passing(seed_repos), now=NOW) == lock and path.read_text() == text


def test_a_fifo_at_the_old_temporary_name_never_blocks_the_write(seed_repos, tmp_path):
    import os
    import threading

    path = tmp_path / "Pulumi.prod.lock.json"
    os.mkfifo(tmp_path / "Pulumi.prod.lock.json.tmp")
    report = passing(seed_repos)
    done = threading.Thread(target=write_lock, args=(path, report), kwargs={"now": NOW}, daemon=True)
    done.start()
    done.join(timeout=30)
    assert not done.is_alive(), "write_lock blocked on a FIFO"
    assert read_lock(path) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Pulumi.prod.lock.json", "Pulumi.prod.lock.json.tmp"]


def test_only_a_passing_report_is_locked(seed_repos, tmp_path):
    failing = run_gate(prod_config(seed_repos.baseline), GitSource(seed_repos.root))
    with pytest.raises(ValueError, match="only a passing gate"):
        write_lock(tmp_path / "l.json", failing, now=NOW)
    assert not (tmp_path / "l.json").exists()


def test_moving_the_bundle_keeps_the_tags_of_earlier_locks(seed_repos, tmp_path):
    path = tmp_path / "Pulumi.prod.lock.json"
    write_lock(path, passing(seed_repos), now=NOW)
    first = read_lock(path)
    assert first.recorded_commit("QuantStrategyLab", QPK, "v0.7.10") == seed_repos.qpk_tags["v0.7.10"]
    # A second lock for the same bundle from a fresh report must keep what the first recorded.
    second = write_lock(path, passing(seed_repos), now=datetime(2026, 4, 21, tzinfo=timezone.utc))
    assert second.refs == first.refs and second.locked_at == "2026-04-21T00:00:00Z"


def test_missing_lock_is_none_and_malformed_lock_is_a_clear_error(tmp_path, seed_repos):
    assert read_lock(tmp_path / "none.json") is None
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LockError, match="python -m release lock"):
        read_lock(bad)
    lock = write_lock(tmp_path / "ok.json", passing(seed_repos), now=NOW)
    data = json.loads(render_lock(lock))
    data["surprise"] = 1
    bad.write_text(json.dumps(data))
    with pytest.raises(LockError, match="surprise"):
        read_lock(bad)


def _tamper(path: Path, edit) -> Path:
    data = json.loads(path.read_text())
    edit(data)
    tampered = path.with_name("tampered.lock.json")
    tampered.write_text(json.dumps(data))
    return tampered


def _run(data, key):
    facts = data["profile_facts"]
    return facts["runs"][facts["services"][key]]


def _disable_on_schwab(data):
    _run(data, "schwab")["profiles"]["tqqq_growth_income"]["enabled"] = False


def _other_platform_commit(data):
    _run(data, "schwab")["commit"] = "0" * 40


def _point_service_elsewhere(data):
    facts = data["profile_facts"]
    facts["services"]["schwab"] = facts["services"]["ibkr"]


def _reseal_facts(edit):
    """An edit with the facts' digest and the lock's recomputed: only provenance can tell."""
    from components.profiles import ProfileFacts
    from release.gate.lock import Lock, facts_digest, lock_digest

    def apply(data):
        edit(data)
        facts = data["profile_facts"]
        renamed = {old: run_key(run) for old, run in facts["runs"].items()}
        facts["runs"] = {renamed[old]: run for old, run in facts["runs"].items()}
        facts["services"] = {key: renamed[at] for key, at in facts["services"].items()}
        data["profile_facts_sha256"] = facts_digest(ProfileFacts.model_validate(facts))
        data["lock_sha256"] = lock_digest(Lock.model_validate({k: v for k, v in data.items() if k != "lock_sha256"}))

    return apply


def run_key(run):
    from components.profiles import PlatformProfiles

    return PlatformProfiles.model_validate(run).key


def _other_ues_commit(data):
    """The facts of services.schwab as if proved with another UES commit under the same tag."""
    _run(data, "schwab")["packages"][1]["commit"] = "0" * 40


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (_disable_on_schwab, "do not match profile_facts_sha256"),
        (_reseal_facts(_other_platform_commit), "profile facts of services.schwab are for CharlesSchwabPlatform@0000000"),
        (_point_service_elsewhere, "profile facts of services.schwab are for InteractiveBrokersPlatform"),
        (_reseal_facts(_other_ues_commit), "ran us-equity-strategies v0.7.13 at 0000000, the lock's release has v0.7.13 at"),
    ],
    ids=["facts edited", "facts of another platform commit, resealed", "another service's facts", "another UES commit, resealed"],
)
def test_facts_that_do_not_match_their_provenance_are_refused(seed_repos, tmp_path, edit, words):
    path = tmp_path / "Pulumi.prod.lock.json"
    write_lock(path, passing(seed_repos), now=NOW)
    with pytest.raises(LockError) as caught:
        read_lock(_tamper(path, edit))
    assert words in str(caught.value) and "run `python -m release lock` again" in str(caught.value)


def test_what_a_resealed_facts_edit_hides(seed_repos, tmp_path):
    """A profile switched off in the facts, both digests recomputed, provenance untouched: not detectable
    from the lock alone (the README says so); `pulumi up` proves the facts again online."""
    path = tmp_path / "Pulumi.prod.lock.json"
    write_lock(path, passing(seed_repos), now=NOW)
    edited = read_lock(_tamper(path, _reseal_facts(_disable_on_schwab)))
    assert edited is not None and edited.profile_facts.requirements("tqqq_growth_income", "schwab") is None


def test_a_lock_from_before_profile_facts_serves_the_tag_history_but_not_the_plan(seed_repos, tmp_path):
    path = tmp_path / "Pulumi.prod.lock.json"
    write_lock(path, passing(seed_repos), now=NOW)
    data = old_schema(json.loads(path.read_text()), 1)
    path.write_text(json.dumps(data))
    old = read_lock(path)
    assert old is not None and old.profile_facts is None and old.recorded_commit("QuantStrategyLab", QPK, "v0.7.10")
    with pytest.raises(LockError, match="written before profile facts were proved by running the platforms' registries"):
        read_lock(path, need_facts=True)
    # Locking again replaces it with one that carries facts.
    assert write_lock(path, passing(seed_repos), now=NOW).profile_facts is not None
    assert read_lock(path, need_facts=True).schema_version == 4


@pytest.mark.parametrize("schema", [2, 3])
def test_locks_whose_facts_were_read_from_source_text_serve_the_history_only(seed_repos, tmp_path, schema):
    """Schemas 2 and 3 carried facts a literal reader took from source text: dropped on load (never judged
    by), the rest judged as before; the next gate run compares its refs with what they recorded."""
    from release.gate.lock import _digest

    path = tmp_path / "Pulumi.prod.lock.json"
    written = write_lock(path, passing(seed_repos), now=NOW)
    data = json.loads(path.read_text())
    data["profile_facts"] = {"ues_tag": "v0.7.13", "ues": {}, "platforms": {}, "services": {}}  # the old shape
    if schema == 2:
        data = old_schema(data, 2)
    else:
        data["schema_version"] = 3
        data["lock_sha256"] = _digest({k: v for k, v in data.items() if k != "lock_sha256"})
    path.write_text(json.dumps(data))
    old = read_lock(path)
    assert old.schema_version == schema and old.release == written.release and old.refs == written.refs
    assert old.profile_facts is None
    with pytest.raises(LockError, match="written before profile facts were proved"):
        read_lock(path, need_facts=True)
    assert run_gate(prod_config(seed_repos.target), GitSource(seed_repos.root), old).ok
    if schema == 3:
        data["refs"][f"QuantStrategyLab/{QPK}"]["v0.7.10"] = "1" * 40
        path.write_text(json.dumps(data))
        with pytest.raises(LockError, match="does not match lock_sha256"):
            read_lock(path)


def _edit_service_commit(data):
    data["services"]["ibkr"]["commit"] = "1" * 40


def _schema_true(data):
    data["schema_version"] = True


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (_edit_service_commit, "does not match lock_sha256"),  # a field outside the facts' digest
        (lambda data: data["refs"][f"QuantStrategyLab/{QPK}"].pop("v0.7.10"), "refs lacks the release's quant-platform-kit v0.7.10"),
        (_schema_true, "schema_version"),
    ],
    ids=["a field outside the facts", "the lock's own history entry deleted", "schema_version: true"],
)
def test_edits_anywhere_in_the_lock_are_refused(seed_repos, tmp_path, edit, words):
    path = tmp_path / "Pulumi.prod.lock.json"
    write_lock(path, passing(seed_repos), now=NOW)
    with pytest.raises(LockError) as caught:
        read_lock(_tamper(path, edit))
    assert words in str(caught.value)


def test_a_lock_with_a_key_given_twice_is_refused(seed_repos, tmp_path):
    path = tmp_path / "Pulumi.prod.lock.json"
    write_lock(path, passing(seed_repos), now=NOW)
    text = path.read_text()
    duplicated = text.replace(
        '"locked_at": "2026-04-20T09:30:00Z",', '"locked_at": "2026-04-20T09:30:00Z",\n  "locked_at": "2030-01-01T00:00:00Z",', 1
    )
    assert duplicated != text
    path.write_text(duplicated)
    with pytest.raises(LockError, match="names locked_at twice"):
        read_lock(path)


def test_what_a_recomputed_digest_hides_and_what_it_does_not(seed_repos, tmp_path):
    """A digest is not a signature: an older history entry deleted with lock_sha256 recomputed is not
    detectable (the README says so), while the lock's own refs must still be in its history."""
    from release.gate.lock import Lock, lock_digest

    path = tmp_path / "Pulumi.prod.lock.json"
    write_lock(path, passing(seed_repos), now=NOW)

    def resealed(edit):
        def apply(data):
            edit(data)
            data["lock_sha256"] = lock_digest(Lock.model_validate({k: v for k, v in data.items() if k != "lock_sha256"}))

        return apply

    history = read_lock(_tamper(path, resealed(lambda data: data["refs"][f"QuantStrategyLab/{QPK}"].update({"v0.7.8": "8" * 40}))))
    assert history.recorded_commit("QuantStrategyLab", QPK, "v0.7.8") == "8" * 40  # an older lock's entry, say
    path.write_text(render_lock(history))
    older = read_lock(_tamper(path, resealed(lambda data: data["refs"][f"QuantStrategyLab/{QPK}"].pop("v0.7.8"))))
    assert older is not None and older.recorded_commit("QuantStrategyLab", QPK, "v0.7.8") is None
    with pytest.raises(LockError, match="refs lacks"):
        read_lock(_tamper(path, resealed(lambda data: data["refs"][f"QuantStrategyLab/{QPK}"].pop("v0.7.10"))))
