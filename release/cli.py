"""`python -m release check | lock | plan | verify`: argument parsing and output only.

Exit codes: 0 the answer is yes (checks pass, plan can proceed, verify passes), 1 the answer is no
(a check failed, a service is blocked, the gate is unverified), 2 bad input (arguments, stack config).
Each command adapts functions of release/; no rule lives here.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from release.config import ConfigError, StackConfig
from release.control_chars import escape_controls
from release.progress import configure as configure_progress
from release.progress import waiting
from release.stack import load_stack_file, raise_profile_problems, stack_file

EXIT_OK, EXIT_NO, EXIT_BAD_INPUT = 0, 1, 2
NO_LIVE_WARNING = (
    "no live state was read (no --live): every service is planned as new, so this plan says nothing about what "
    "pulumi up would change on a running service; review with --live gcloud before pulumi up"
)


class UsageError(Exception):
    """Bad arguments or input files: reported on stderr with exit 2."""


def _common(parser: argparse.ArgumentParser, formats: tuple[str, ...] = ("text", "json"), sources: bool = True) -> None:
    parser.add_argument("--stack", help="stack name; reads Pulumi.<stack>.yaml (default: prod)")
    parser.add_argument(
        "--config-file",
        type=Path,
        help="a stack file to read instead of Pulumi.<stack>.yaml (its stack: the <stack> of its name, else prod)",
    )
    if sources:  # only commands that run the gate take a source: an option that is ignored would mislead
        parser.add_argument("--source", choices=("github", "git"), default="github", help="where tags and pins are verified")
        parser.add_argument("--git-root", type=Path, help="with --source git: a directory holding one clone per repo")
    parser.add_argument("--format", choices=formats, default="text")
    parser.add_argument(
        "--progress",
        action="store_true",
        help="print a progress line on stderr for every wait over a second (the default when stderr is a terminal)",
    )


# Pulumi's stack-name alphabet; the name becomes a file name, so `../` must not steer it elsewhere.
STACK_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,100}")


DEFAULT_STACK = "prod"


def _gate_wait(args: argparse.Namespace) -> str:
    where = f"local clones under {args.git_root}" if args.source == "git" else "GitHub"
    return f"release gate: reading tags, pins, CI and profile facts from {where}"


def config_path(args: argparse.Namespace) -> Path:
    if args.config_file is not None:
        if args.stack is not None:
            # Two answers to "which stack": the file's config would be reported (and imported) as another stack's.
            raise UsageError("--stack and --config-file name the stack twice; pass one of them")
        given: Path = args.config_file
        return given
    stack = args.stack if args.stack is not None else DEFAULT_STACK
    if not STACK_NAME_PATTERN.fullmatch(stack) or stack.startswith("."):
        raise UsageError("--stack is not a stack name (letters, digits, _, . and -); use --config-file for a path")
    return stack_file(stack)


def stack_name(args: argparse.Namespace) -> str:
    """The stack a command speaks of: --stack, else the <stack> of a Pulumi.<stack>.yaml --config-file, else prod."""
    if args.stack is not None:
        return str(args.stack)
    if args.config_file is not None:
        name = Path(args.config_file).name
        if name.startswith("Pulumi.") and name.endswith(".yaml"):
            stack = name[len("Pulumi.") : -len(".yaml")]
            if STACK_NAME_PATTERN.fullmatch(stack) and not stack.startswith("."):
                return stack
    return DEFAULT_STACK


def load_config(args: argparse.Namespace) -> StackConfig:
    return load_stack_file(config_path(args))


def _check(args: argparse.Namespace) -> int:
    import json
    import os

    from release.gate.checks import run_gate
    from release.gate.lock import LockError, lock_path, read_lock
    from release.gate.selection import make_source
    from release.gate.sources import SourceSelectionError

    config = load_config(args)
    try:
        source = make_source(args.source, config.release, args.git_root, os.environ)
        lock = read_lock(lock_path(config_path(args)))
    except (SourceSelectionError, LockError) as error:
        raise UsageError(str(error)) from None
    with waiting(_gate_wait(args)):
        report = run_gate(config, source, lock)
    _check_profile_config(args, report.config or config, report)
    if args.format == "json":
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        print(report.render_text())
    return EXIT_OK if report.ok else EXIT_NO


def _lock(args: argparse.Namespace) -> int:
    import json
    import os

    from release.gate.checks import run_gate
    from release.gate.lock import LockError, lock_path, read_lock, write_lock
    from release.gate.selection import make_source
    from release.gate.sources import SourceSelectionError

    config = load_config(args)
    path = lock_path(config_path(args))
    try:
        source = make_source(args.source, config.release, args.git_root, os.environ)
        previous = read_lock(path)
    except (SourceSelectionError, LockError) as error:
        raise UsageError(str(error)) from None
    with waiting(_gate_wait(args)):
        report = run_gate(config, source, previous)
    # A config the proved facts refuse (e.g. a manifest path missing) is never locked: exit 2, lock unchanged.
    _check_profile_config(args, report.config or config, report)
    try:
        written = write_lock(path, report) if report.ok else None
    except OSError as error:
        raise UsageError(f"cannot write the lock {path} ({error.strerror}); check the directory's permissions") from None
    if args.format == "json":
        print(json.dumps({**report.to_json(), "lock": str(path) if written else None}, indent=2, sort_keys=True))
    else:
        print(report.render_text())
        print(
            f"wrote {path} (locked at {written.locked_at})" if written else f"lock NOT written: the gate did not pass; {path} is unchanged"
        )
    return EXIT_OK if written else EXIT_NO


def _plan(args: argparse.Namespace) -> int:
    import json
    import os

    from release.cutover.images import ImageInputError, read_images
    from release.cutover.live import LiveStateError, read_live, require_complete
    from release.cutover.plan import build_plan, facts_note, lock_note, render_text, to_json, unverified_note
    from release.cutover.plan_comment import render_comment
    from release.gate.checks import run_gate, with_lock
    from release.gate.lock import lock_path, read_lock
    from release.gate.selection import make_source
    from release.gate.sources import SourceSelectionError

    config = load_config(args)
    try:
        live = require_complete(read_live(args.live, config.services), config.services, args.new)
    except LiveStateError as error:
        raise UsageError(str(error)) from None
    try:
        images = read_images(args.images, config.services)
    except ImageInputError as error:
        raise UsageError(str(error)) from None
    from release.cutover.scheduling import SchedulingInputError, read_jobs

    try:
        jobs = read_jobs(args.scheduler, config.services)
    except SchedulingInputError as error:
        raise UsageError(str(error)) from None
    lock_file = args.lock if args.lock is not None else lock_path(config_path(args))
    try:
        lock = read_lock(lock_file)
    except (OSError, ValueError) as error:
        raise UsageError(f"{lock_file}: cannot be used as a lock ({error})") from None
    if args.lock is not None and lock is None:
        raise UsageError(f"{lock_file}: no such lock; run python -m release lock, or drop --lock")
    try:
        source = make_source(args.source, config.release, args.git_root, os.environ)
    except SourceSelectionError as error:
        raise UsageError(str(error)) from None
    with waiting(_gate_wait(args)):
        online = run_gate(config, source, lock=lock)
    note = ""
    origin = f"proved now from {online.verified_from}"
    if online.unverified and lock is not None:
        if lock.profile_facts is None:
            raise UsageError(
                f"{lock_file} was written before profile facts were proved by running the platforms' registries; run `python -m release lock` again"
            )
        # Offline review: the lock answers only what the source could not; `pulumi up` verifies again online.
        gate = with_lock(online, config, lock)
        note = lock_note(lock)
        if online.facts.profiles is None and gate.facts.profiles is not None:
            origin = f"from the lock at {lock.locked_at} (proved then from {lock.source})"
    else:
        gate = online
        if online.unverified:
            note = unverified_note()
    config = getattr(gate, "config", None) or config
    facts = _proved_profiles(gate)
    if facts is not None:
        # Second stage of config validation: the rules that need the facts, before anything is planned.
        raise_profile_problems(config, facts, str(config_path(args)))
    plan = build_plan(
        config, gate, live.services, facts, lock=lock, gate_note=note, live_source=live.source,
        new_services=args.new, images=images.checks, images_source=images.source,
        input_warnings=() if args.live is not None else (NO_LIVE_WARNING,),
        facts_source=facts_note(facts, origin), jobs=jobs,
    )  # fmt: skip
    if args.json_out is not None:
        from release.local_files import InputFileError, write_outputs

        try:
            write_outputs(
                [(args.json_out, json.dumps(to_json(plan), indent=2) + "\n")], [config_path(args)], "pass --json-out a new or regular file"
            )
        except InputFileError as error:
            raise UsageError(str(error)) from None
    if args.format == "json":
        print(json.dumps(to_json(plan), indent=2))
    elif args.format == "markdown":
        # The pull-request comment: the verdict and a row per service, the text plan collapsed below.
        print(render_comment(plan, render_text(plan), stack_name(args)), end="")
    else:
        print(render_text(plan), end="")
    return EXIT_OK if plan.ok else EXIT_NO


def _check_profile_config(args: argparse.Namespace, config: StackConfig, report: Any) -> None:
    """Second validation stage once the gate proved the profile facts: ConfigError (exit 2) for any problem."""
    facts = _proved_profiles(report)
    if facts is not None:
        raise_profile_problems(config, facts, str(config_path(args)))


def _proved_profiles(gate: Any) -> Any:
    """The profile facts a gate report (online or from a lock) carries, each service bound to the facts of
    exactly its configured commit and release; None when they were not proved."""
    facts = getattr(getattr(gate, "facts", None), "profiles", None)
    config = getattr(gate, "config", None)
    return facts if facts is None or config is None else facts.for_config(config)


def _verify(args: argparse.Namespace) -> int:
    import json
    import time
    from datetime import datetime, timezone

    from release.cutover.images import ImageInputError, read_images
    from release.cutover.live import LiveStateError, read_live
    from release.cutover.plan import resolved_digest
    from release.cutover.scheduling import SchedulingInputError, read_iam, read_jobs, scheduler_checks
    from release.cutover.verify import (
        ServiceVerification,
        last_records,
        operator_record,
        render_verify_text,
        verify_json,
        verify_service,
        wait_until_confirmed,
    )
    from release.local_files import RECORD_MAX_BYTES, InputFileError, append_text, read_text

    config = load_config(args)
    wait = _wait_seconds(args)
    started = time.monotonic()
    applied = _verify_phases(args, config)
    # The record is read before anything else: a FIFO or a corrupt file is bad input, found before the checks run.
    record_fix = "pass --record a regular JSON-lines file (or a new path)"
    previous: dict[str, Any] = {}
    if args.record is not None:
        try:
            previous = last_records(read_text(args.record, RECORD_MAX_BYTES, record_fix).splitlines())
        except FileNotFoundError:
            previous = {}
        except InputFileError as error:
            raise UsageError(str(error)) from None
    try:
        images = read_images(args.images, config.services).checks if args.images is not None else {}
    except ImageInputError as error:
        raise UsageError(str(error)) from None
    digests = {key: resolved_digest(images.get(key)) for key in config.services}
    try:
        # A service the input lacks fails its `service` check (exit 1): verify plans nothing over it.
        live_services: Mapping[str, Any] = read_live(args.live, config.services).services
        if wait > 0:
            live_services = wait_until_confirmed(
                live_services,
                applied,
                lambda keys: _reread_live(args.live, config, keys),
                wait,
                sys.stderr,
                digests,
            )
    except LiveStateError as error:
        raise UsageError(str(error)) from None
    try:
        jobs = read_jobs(args.scheduler, config.services)
        policies = read_iam(args.iam, config.services)
    except SchedulingInputError as error:
        raise UsageError(str(error)) from None
    facts, origin = _verify_facts(args, config)
    print(f"profile facts: {escape_controls(origin)}", file=sys.stderr)
    results = []
    for key, spec in config.services.items():
        live = live_services.get(key)
        checks = verify_service(key, spec, config.release, live, facts, digests[key], applied[key])
        result = ServiceVerification(
            key,
            spec.service_name,
            tuple(checks) + tuple(scheduler_checks(spec, live, jobs, policies, key)),
            applied[key] if live is not None else None,
        )
        results.append(_with_next_step(result, key, spec, config, live, facts, args, digests[key]))
    first_runs = _first_runs(args, config, live_services, facts, max(0.0, wait - (time.monotonic() - started)))
    results = [
        ServiceVerification(r.key, r.service, r.checks + first_runs[r.key].checks, r.applied, r.note) if r.key in first_runs else r
        for r in results
    ]
    if args.format == "json":
        print(json.dumps(verify_json(results), indent=2))
    else:
        print(render_verify_text(results), end="")
    if args.record is not None:
        # A failed verification is recorded too, marked `verified: false` on each of its service lines: the
        # record is the operator's history of what was checked, and a failure is part of it.
        try:
            now = datetime.now(timezone.utc)
            lines = []
            for result in results:
                spec = config.services[result.key]
                record = operator_record(
                    result.key, spec, config.release, live_services.get(result.key), list(result.checks),
                    previous.get(spec.service_name), now,
                )  # fmt: skip
                record["phase"] = None if result.applied is None else result.applied.phase
                if result.key in first_runs:
                    record.update(first_runs[result.key].record)
                lines.append(json.dumps(record, sort_keys=True) + "\n")
            append_text(args.record, "".join(lines), record_fix)
        except InputFileError as error:
            raise UsageError(str(error)) from None
    return EXIT_OK if all(result.ok for result in results) else EXIT_NO


def _reread_live(arg: str, config: StackConfig, keys: list[str]) -> Mapping[str, Any]:
    """The services still waited for, read again: gcloud asks for those alone; a file or directory is
    read whole (it describes every service, and a subset would call the others unconfigured)."""
    from release.cutover import gcloud
    from release.cutover.live import read_live

    services = {key: config.services[key] for key in keys} if arg == gcloud.ARGUMENT else config.services
    latest = read_live(arg, services).services
    return {key: latest.get(key) for key in keys}


def _wait_seconds(args: argparse.Namespace) -> float:
    from release.cutover.verify import MAX_WAIT_SECONDS
    from release.first_run.verification import parse_wait

    try:
        return parse_wait(args.wait, MAX_WAIT_SECONDS) if args.wait is not None else 0.0
    except ValueError as error:
        raise UsageError(str(error)) from None


def _verify_phases(args: argparse.Namespace, config: StackConfig) -> dict[str, Any]:
    """The phase each service is judged against: from --plan, --phase, or the end state."""
    from release.cutover.plan import bundle_json
    from release.cutover.verify import PlanInputError, end_state, image_step, phases_from_plan
    from release.local_files import PLAN_MAX_BYTES, InputFileError, load_json, read_text

    if args.plan is not None and args.phase is not None:
        raise UsageError("--plan and --phase both say which phase to judge; pass one (--plan: the plan the update was applied from)")
    if args.plan is not None:
        fix = "pass the output of `python -m release plan --format json` that this update was applied from"
        try:
            document = load_json(read_text(args.plan, PLAN_MAX_BYTES, fix), str(args.plan), fix)
            return phases_from_plan(document, config, bundle_json(config.release), f"the plan {args.plan}")
        except FileNotFoundError:
            raise UsageError(f"{args.plan}: no such file; {fix}") from None
        except (InputFileError, PlanInputError) as error:
            raise UsageError(str(error) if isinstance(error, InputFileError) else f"{args.plan} {error}") from None
    if args.phase == "image":
        return {key: image_step(spec, config.release, "--phase image") for key, spec in config.services.items()}
    origin = "--phase env" if args.phase == "env" else "the default (no --plan or --phase)"
    return {key: end_state(spec, config.release, origin) for key, spec in config.services.items()}


def _with_next_step(
    result: Any, key: str, spec: Any, config: StackConfig, live: Any, facts: Any, args: argparse.Namespace, digest: Optional[str]
) -> Any:
    """A service judged against the end state by default that fails it, but whose image step is live:
    say so, and what to run next (the second `pulumi up`), instead of leaving 13 failures unexplained."""
    from dataclasses import replace

    from release.cutover.verify import image_step, verify_service

    if result.ok or live is None or args.plan is not None or args.phase is not None:
        return result
    image = verify_service(key, spec, config.release, live, facts, digest, image_step(spec, config.release, "the default"))
    if all(check.ok for check in image):
        return replace(
            result,
            note="the image step is confirmed live and the env step is not applied yet: if the last update was the image step, "
            "this is expected; run `pulumi up` again for the env step (or judge the image step with --plan/--phase image)",
        )
    return result


def _verify_facts(args: argparse.Namespace, config: StackConfig) -> tuple[Any, str]:
    """The profile facts verify judges by: those the lock proved for this config.

    verify runs right after `pulumi up`, whose config `python -m release lock` proved; it reads no source
    itself, so without a lock that carries facts for this config there is nothing to judge by (exit 2).
    """
    from release.gate.checks import gate_from_lock
    from release.gate.lock import LockError, lock_path, read_lock

    lock_file = args.lock if args.lock is not None else lock_path(config_path(args))
    try:
        lock = read_lock(lock_file, need_facts=True)
    except LockError as error:
        raise UsageError(str(error)) from None
    if lock is None:
        raise UsageError(
            f"{lock_file}: no lock; verify judges by the profile facts a lock proved: run `python -m release lock` (or pass --lock)"
        )
    offline = gate_from_lock(config, lock)
    facts = _proved_profiles(offline)
    failed = [c for c in offline.checks if not c.ok]
    if facts is None or failed:
        why = "; ".join(f"{c.id}: {c.message}" for c in failed[:3]) or "no profile facts for this config"
        raise UsageError(f"{lock_file} does not prove this config ({why}); run `python -m release lock` again")
    raise_profile_problems(config, facts, str(config_path(args)))
    return facts, f"from the lock at {lock.locked_at} ({lock_file})"


def _first_runs(args: argparse.Namespace, config: StackConfig, live: Mapping[str, Any], profiles: Any, wait: float) -> dict[str, Any]:
    """`verify --reports`: each service's first run after the cutover and its snapshot, read from GCS."""
    import time

    from release.first_run.gcs import GcsReader, parse_gs_uri
    from release.first_run.run_facts import run_facts
    from release.first_run.verification import FirstRunOptions, first_run_checks, parse_since

    if not args.reports:
        given = [flag for flag, value in (("--reports-uri", args.reports_uri), ("--since", args.since)) if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)} only apply with --reports; add --reports")
        return {}
    try:
        if args.reports_uri is not None:
            parse_gs_uri(args.reports_uri, allow_bucket_only=True)
        since = parse_since(args.since) if args.since is not None else None
    except ValueError as error:
        raise UsageError(str(error)) from None
    reader = GcsReader()
    deadline = time.monotonic() + wait  # one wait shared by every service, not one each
    results = {}
    for key, spec in config.services.items():
        options = FirstRunOptions(reports_uri=args.reports_uri, since=since, wait_seconds=max(0.0, deadline - time.monotonic()))
        facts = run_facts(profiles, spec.strategy_profile, key)
        with waiting(f"reading {spec.service_name}'s first run and snapshot from GCS"):
            results[key] = first_run_checks(spec, live.get(key), facts, reader, options, progress=sys.stderr)
    return results


def _adopt(args: argparse.Namespace) -> int:
    import json
    from importlib import metadata

    from release.cutover.adopt import AdoptError, adopt_all, adopt_scheduling, adopt_targets, adopted_specs, import_file, render_services
    from release.cutover.live import LiveStateError, read_live
    from release.cutover.scheduling import SchedulingInputError, read_iam, read_jobs
    from release.local_files import InputFileError, write_outputs
    from release.stack import RELEASE_KEY, SERVICES_KEY, read_stack_keys

    path = config_path(args)
    ours, _ = read_stack_keys(path)
    children: dict[str, list[dict[str, Any]]] = {}
    try:
        targets = adopt_targets(ours.get(SERVICES_KEY), str(path))
        live = read_live(args.live, targets)
        release, services, notes = adopt_all(
            targets,
            live.services,
            ours.get(RELEASE_KEY),
            str(path),
            lambda bundle, wanted: _adopt_facts(args, bundle, wanted),
            _adopt_installs(args),
        )
        if args.scheduler is not None or args.iam is not None:
            specs = adopted_specs(release, services)
            children = adopt_scheduling(services, specs, read_jobs(args.scheduler, specs), read_iam(args.iam, specs))
            adopted_specs(release, services)  # the scheduler blocks pass the stack's checks too
    except (AdoptError, LiveStateError, SchedulingInputError) as error:
        raise UsageError(str(error)) from None
    # Everything is computed before anything is written, and the files are written all or none: a refused
    # service, or an output that cannot be written, leaves nothing behind.
    text = render_services(services, release)
    imports = import_file(targets, stack_name(args), metadata.version("pulumi_gcp"), children)
    outputs = [(args.import_file, json.dumps(imports, indent=2) + "\n")] if args.import_file is not None else []
    outputs += [(args.output, text)] if args.output is not None else []
    try:
        write_outputs(outputs, [path], "pass --output and --import-file new or regular files (not the stack file)")
    except InputFileError as error:
        raise UsageError(str(error)) from None
    if args.output is None:
        print(text, end="")
    if args.scheduler is None:
        # Without the jobs the import file cannot name them; the program would then create a job that
        # exists (ALREADY_EXISTS) on the first `pulumi up`.
        notes = (
            *notes,
            "scheduler jobs not read (no --scheduler): no scheduler: blocks and no job entries in the import file; "
            "rerun with --scheduler gcloud, or import each <key>-scheduler by hand before pulumi up",
        )
    members = {key for key, entries in children.items() for entry in entries if entry["name"] == f"{key}-invoker"}
    missing = sorted(set(targets) - members)
    if missing:
        why = (
            "invoker policies not read (no --iam)"
            if args.iam is None
            else "the live policy does not grant the scheduler account roles/run.invoker"
        )
        notes = (
            *notes,
            f"no invoker member import for {', '.join(missing)} ({why}): the first pulumi up creates each <key>-invoker, "
            "an additive binding (a no-op where it is already bound); importing a member that is not bound would fail the import",
        )
    for note in notes:
        print(f"note: {escape_controls(note)}", file=sys.stderr)
    return EXIT_OK


def _adopt_installs(args: argparse.Namespace) -> Callable[[Any, Any], Any]:
    """What a live service's commit installs, read through the source (for a service with no release record)."""
    import os

    from release.config import ReleaseBundle, RepositoryNames
    from release.cutover.adopt import AdoptError
    from release.gate.fetch import fetch_ref_tree
    from release.gate.pins import PinFileError, read_install_files
    from release.gate.selection import make_source
    from release.gate.sources import SourceError, SourceSelectionError
    from release.gate.trees import TreeError
    from release.stack import RELEASE_KEY, read_stack_keys

    ours, _ = read_stack_keys(config_path(args))
    found = ours.get(RELEASE_KEY)
    raw: dict[str, Any] = found if isinstance(found, dict) else {}
    try:
        owner = str(raw.get("githubOwner") or ReleaseBundle.model_fields["github_owner"].default)
        repositories = RepositoryNames.model_validate(raw.get("repositories") or {})
    except ValueError as error:
        raise UsageError(f"release.repositories: {error}") from None

    def installs(target: Any, live: Any) -> Any:
        repo = repositories.for_platform(target.platform)
        try:
            # The source only needs the owner; the release it would verify is what adopt is reading.
            source = make_source(args.source, ReleaseBundle.model_construct(github_owner=owner), args.git_root, os.environ)
            with waiting(f"reading what {repo}@{live.commit[:7]} installs from {args.source}"):
                tree = fetch_ref_tree(source, repo, live.commit)
            return read_install_files(tree.text, owner)
        except SourceSelectionError as error:
            raise AdoptError(str(error)) from None
        except (SourceError, TreeError, PinFileError) as error:
            raise AdoptError(
                f"what {repo}@{live.commit[:7]} installs could not be read ({error}); fix access to the source "
                "(--source, --git-root, GITHUB_TOKEN)"
            ) from None

    return installs


def _adopt_facts(args: argparse.Namespace, bundle: Any, wanted: Mapping[str, tuple[Any, str]]) -> Any:
    """Each adopted service's profile facts (its live commit with the release it runs), for canonical
    profile names: the stack's lock when it proved exactly that pair, else proved now through the source
    (the platform's registry run over the pinned trees; never a hand-kept list of aliases)."""
    import os

    from release.cutover.adopt import AdoptError
    from release.gate.lock import LockError, lock_path, read_lock
    from release.gate.profile_checks import FactsUnproved, facts_for_release
    from release.gate.selection import make_source
    from release.gate.sources import SourceError, SourceSelectionError

    try:
        lock = read_lock(lock_path(config_path(args)))
    except LockError as error:
        raise AdoptError(str(error)) from None
    try:
        source = make_source(args.source, bundle, args.git_root, os.environ)
        with waiting(f"proving the profile facts of {len(wanted)} service(s) at {bundle.describe()} from {args.source}"):
            return facts_for_release(bundle, wanted, source, None if lock is None else lock.profile_facts)
    except SourceSelectionError as error:
        raise AdoptError(str(error)) from None
    except (SourceError, FactsUnproved) as error:
        raise AdoptError(
            f"the profile facts at {bundle.describe()} could not be proved to name profiles canonically ({error}); fix access to "
            "the source (--source, --git-root, GITHUB_TOKEN) or write a lock first"
        ) from None


DESCRIPTION = """\
Release and cut over the live US-equity trading services: prove the release (QPK -> UES -> platform pins),
review what the next `pulumi up` changes, and verify what it did. `pulumi preview` / `pulumi up` apply it."""

EXIT_CODES = """\
exit codes:
  0  yes: the checks pass, the plan can proceed, verify passes, the lock or adoption was written
  1  no: a check failed or could not be verified, a service is blocked, verify found a failure
  2  bad input: arguments, the stack config, a live/images/scheduler/plan file, a lock, a missing Pulumi.yaml"""

EXAMPLES = {
    "top": """\
examples:
  python -m release plan --stack prod --live gcloud --images gcloud --scheduler gcloud
  python -m release lock --source git --git-root ~/src/quantstrategylab
  python -m release verify --plan cutover-plan.json --wait 600 --live gcloud --images gcloud --scheduler gcloud --iam gcloud

`python -m release COMMAND --help` for each command's options and examples.""",
    "check": """\
examples:
  GITHUB_TOKEN=... python -m release check --stack prod
  python -m release check --source git --git-root ~/src/quantstrategylab --format json""",
    "lock": """\
examples:
  python -m release lock --stack prod            # writes Pulumi.prod.lock.json beside the stack; commit it
  python -m release lock --source git --git-root ~/src/quantstrategylab""",
    "plan": """\
examples:
  python -m release plan --stack prod                           # offline: the lock's verdict, no live state
  python -m release plan --live gcloud --images gcloud --scheduler gcloud --json-out cutover-plan.json
  python -m release plan --live live/ --new longbridge-hk --format markdown > comment.md""",
    "verify": """\
examples:
  python -m release verify --plan cutover-plan.json --wait 600 --live gcloud --images gcloud --scheduler gcloud --iam gcloud
  python -m release verify --phase image --live live/ --scheduler jobs/ --iam iam/
  python -m release verify --live gcloud --images gcloud --scheduler gcloud --iam gcloud --reports --wait 900 --record ops.jsonl""",
    "adopt": """\
examples:
  python -m release adopt --live gcloud --scheduler gcloud --iam gcloud --output services.yaml --import-file import.json""",
}


def program_version() -> str:
    """`--version`: this program's version and the Pulumi SDKs it runs with."""
    from importlib import metadata

    from release import __version__

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return f"python -m release {__version__} (pulumi {installed('pulumi')}, pulumi-gcp {installed('pulumi_gcp')})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m release",
        description=DESCRIPTION,
        epilog=f"{EXIT_CODES}\n\n{EXAMPLES['top']}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=program_version())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        help_text: str,
        formats: tuple[str, ...] = ("text", "json"),
        sources: bool = True,
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=f"{EXIT_CODES}\n\n{EXAMPLES[name]}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _common(sub, formats, sources)
        sub.set_defaults(handler=handler)
        return sub

    command("check", _check, "run the release gate and print its report")
    command("lock", _lock, "run the gate and, when it passes, write the stack's lock file")
    plan = command(
        "plan", _plan, "the offline cutover plan: gate, per-service phase and env diff, next steps", ("text", "json", "markdown")
    )
    plan.add_argument("--lock", type=Path, help="lock file (default: the stack's lock)")
    plan.add_argument(
        "--new",
        action="append",
        default=[],
        metavar="KEY",
        help="a service that does not exist yet (planned as new): with --live FILE|DIR every other service must be described",
    )
    plan.add_argument(
        "--json-out",
        type=Path,
        help="also write the plan as JSON (what --format json prints) to this file, e.g. for `verify --plan` after the update",
    )
    plan.add_argument("--live", help="live state: a gcloud JSON file, a directory of them, or 'gcloud'")
    plan.add_argument(
        "--images",
        help="image check: `gcloud artifacts docker images describe --format=json` output (file or directory), or 'gcloud'",
    )
    plan.add_argument(
        "--scheduler",
        help="live scheduler jobs (gcloud scheduler jobs describe JSON, file or directory, or 'gcloud'): shows what this update changes on each job",
    )
    verify = command("verify", _verify, "after pulumi up: the runbook checks against live state", sources=False)
    verify.add_argument("--lock", type=Path, help="the lock whose profile facts verify judges by (default: the stack's lock)")
    verify.add_argument("--live", required=True, help="live state: a gcloud JSON file, a directory of them, or 'gcloud'")
    verify.add_argument(
        "--images",
        help="the configured images' digests (like plan --images): commit-live compares the live image by digest; "
        "without it a live image pinned by digest cannot be matched to a configured tag",
    )
    verify.add_argument("--record", type=Path, help="append the operator record (JSON lines) to this file")
    verify.add_argument("--reports", action="store_true", help="also check the first run's execution report and snapshot manifest in GCS")
    verify.add_argument("--reports-uri", help="with --reports: gs:// reports prefix (default: the service's EXECUTION_REPORT_GCS_URI)")
    verify.add_argument("--since", help="with --reports: the cutover time, ISO-8601 with zone (default: when the service became Ready)")
    verify.add_argument(
        "--wait",
        help="poll up to SECONDS (one deadline for the run): for each image to be confirmed live, then with --reports for the first run to report",
    )
    verify.add_argument(
        "--plan",
        type=Path,
        help="the plan (`plan --format json`) the update was applied from: each service is judged against the phase it applied",
    )
    verify.add_argument(
        "--phase",
        choices=("image", "env"),
        help="judge every service against this phase: image (commit live, strategy env held) or env (the end state; the default)",
    )
    verify.add_argument("--scheduler", help="scheduler jobs: gcloud scheduler jobs describe JSON (file or directory), or 'gcloud'")
    verify.add_argument(
        "--iam", help="invoker bindings: gcloud run services get-iam-policy JSON as <service name>.json (file or directory), or 'gcloud'"
    )
    adopt = command("adopt", _adopt, "the release and stack entries of services deployed by hand, and a pulumi import file", ("text",))
    adopt.add_argument("--live", required=True, help="live state: a gcloud JSON file, a directory of them, or 'gcloud'")
    adopt.add_argument("--output", type=Path, help="write the release and services YAML here (default: stdout)")
    adopt.add_argument("--import-file", type=Path, help="write the `pulumi import --file` JSON here")
    adopt.add_argument(
        "--scheduler",
        help="scheduler jobs (gcloud scheduler jobs describe JSON, file or directory, or 'gcloud'): adds scheduler: and their imports",
    )
    adopt.add_argument(
        "--iam",
        help="invoker bindings (gcloud run services get-iam-policy JSON as <service name>.json, file or directory, or 'gcloud'): "
        "imports each invoker member the live policy grants",
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_BAD_INPUT if exit_.code not in (0, None) else EXIT_OK
    if getattr(args, "git_root", None) is not None and args.source != "git":
        print("error: --git-root needs --source git", file=sys.stderr)
        return EXIT_BAD_INPUT
    configure_progress(sys.stderr if args.progress or sys.stderr.isatty() else None)
    try:
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except ConfigError as error:
        print(error.report(), file=sys.stderr)
        return EXIT_BAD_INPUT
    except UsageError as error:
        # One paragraph: a path or a gcloud line quoted in the message cannot add lines or drive the terminal.
        print(f"error: {escape_controls(str(error))}", file=sys.stderr)
        return EXIT_BAD_INPUT
