"""release/cutover/images.py: image references, the describe JSON and invoke readers, digest pinning, pruning warning."""

from __future__ import annotations

import json
import subprocess

import pytest

from components.env import ServiceEnv, ServiceRevision
from release.cutover.images import (
    ImageInputError,
    ImageLookupError,
    ImageMissingError,
    parse_image,
    pin_digest,
    pruned_repository_warning,
    read_images,
    read_images_gcloud,
    read_images_path,
    resolve_image_invoke,
)
from release.stack import load_stack_file
from tests.fixtures.live_json import image_describe, image_digest, write_images_dir, write_json
from tests.fixtures.projects import SEED_STACK_FILE

CONFIG = load_stack_file(SEED_STACK_FILE)
IBKR = CONFIG.services["ibkr"]
REPOSITORY = IBKR.image.rsplit(":", 1)[0]
DIGEST = "sha256:" + "ab" * 32


def test_parse_image_tag_and_digest_forms():
    tagged = parse_image(IBKR.image)
    assert (tagged.repository, tagged.tag, tagged.digest) == (REPOSITORY, IBKR.commit, None)
    pinned = parse_image(f"{REPOSITORY}@{DIGEST}")
    assert (pinned.tag, pinned.digest, pinned.text) == (None, DIGEST, f"{REPOSITORY}@{DIGEST}")
    with pytest.raises(ValueError, match="malformed digest"):
        parse_image(f"{REPOSITORY}@sha256:abc")
    with pytest.raises(ValueError, match="no tag or digest"):
        parse_image(REPOSITORY)


def test_artifact_registry_path_is_split_for_the_invoke():
    artifact = parse_image(IBKR.image).artifact()
    assert artifact is not None
    assert (artifact.location, artifact.project, artifact.repository_id) == (
        "us-central1",
        "interactivebrokersquant",
        "cloud-run-source-deploy",
    )
    assert artifact.image_name == f"interactivebrokersplatform/cloud-run:{IBKR.commit}"
    assert parse_image(f"{REPOSITORY}@{DIGEST}").artifact().image_name == f"interactivebrokersplatform/cloud-run@{DIGEST}"
    assert parse_image("gcr.io/project/image:tag").artifact() is None


def test_images_dir_resolves_each_service_by_repository(tmp_path):
    directory = write_images_dir(tmp_path / "images", [spec.image for spec in CONFIG.services.values()])
    checks = read_images_path(directory, CONFIG.services)
    assert {key: check.status for key, check in checks.items()} == dict.fromkeys(CONFIG.services, "present")
    ibkr = checks["ibkr"].resolved
    assert ibkr.digest == image_digest(IBKR.image) and ibkr.tag == IBKR.commit
    assert ibkr.deployed == f"{REPOSITORY}@{image_digest(IBKR.image)}"


def test_an_image_without_a_document_is_missing_and_names_the_commit(tmp_path):
    directory = write_images_dir(tmp_path / "images", [IBKR.image])
    checks = read_images_path(directory, CONFIG.services)
    assert checks["ibkr"].ok and checks["schwab"].status == "missing"
    schwab = CONFIG.services["schwab"]
    assert schwab.image in checks["schwab"].message and schwab.commit in checks["schwab"].message


@pytest.mark.parametrize(
    "document, message",
    [
        ("{", "not valid JSON"),
        (json.dumps({"name": "x"}), "fully_qualified_digest"),
        (json.dumps(image_describe("us-central1-docker.pkg.dev/p/r/other:1")), "which no service's image names"),
        (
            json.dumps({"image_summary": {"digest": DIGEST, "fully_qualified_digest": f"{REPOSITORY}@sha256:{'cd' * 32}"}}),
            "disagree",
        ),
    ],
)
def test_malformed_or_foreign_documents_are_bad_input(tmp_path, document, message):
    path = tmp_path / "image.json"
    path.write_text(document, encoding="utf-8")
    with pytest.raises(ImageInputError, match=message):
        read_images_path(path, CONFIG.services)


def test_a_document_for_another_digest_names_service_and_field(tmp_path):
    services = {"ibkr": IBKR.model_copy(update={"image": f"{REPOSITORY}@{DIGEST}"})}
    path = write_json(tmp_path / "ibkr.json", image_describe(IBKR.image, digest="sha256:" + "cd" * 32))
    with pytest.raises(ImageInputError, match=r"services\.ibkr\.image"):
        read_images_path(path, services)


def test_without_images_every_check_is_unverified():
    checks = read_images(None, CONFIG.services).checks
    assert {check.status for check in checks.values()} == {"unverified"}
    assert "--images" in checks["ibkr"].message


def fake_gcloud(answers):
    """A gcloud runner answering per image: a document, or (exit code, stderr)."""
    calls = []

    def run(command, **kwargs):
        calls.append(command)
        assert kwargs["timeout"] > 0 and command[:5] == ["gcloud", "artifacts", "docker", "images", "describe"]
        answer = answers[command[5]]
        if isinstance(answer, tuple):
            return subprocess.CompletedProcess(command, answer[0], "", answer[1])
        return subprocess.CompletedProcess(command, 0, json.dumps(answer), "")

    run.calls = calls
    return run


def test_gcloud_present_missing_and_failing():
    services = {key: CONFIG.services[key] for key in ("ibkr", "schwab")}
    schwab = services["schwab"].image
    runner = fake_gcloud({IBKR.image: image_describe(IBKR.image), schwab: (1, "ERROR: (gcloud.artifacts) NOT_FOUND: image")})
    checks = read_images_gcloud(services, runner)
    assert checks["ibkr"].ok and checks["schwab"].status == "missing"
    denied = fake_gcloud({IBKR.image: (1, "ERROR: PERMISSION_DENIED"), schwab: image_describe(schwab)})
    with pytest.raises(ImageInputError, match="PERMISSION_DENIED"):
        read_images_gcloud(services, denied)


def test_gcloud_answer_about_another_image_is_bad_input():
    services = {"ibkr": IBKR}
    runner = fake_gcloud({IBKR.image: image_describe("us-central1-docker.pkg.dev/interactivebrokersquant/r/other:1")})
    with pytest.raises(ImageInputError, match=r"services\.ibkr\.image"):
        read_images_gcloud(services, runner)


class InvokeFailed(Exception):
    pass


def test_invoke_not_found_is_a_missing_image_naming_image_and_commit():
    def fetch(artifact):
        raise InvokeFailed("Error: Requested image was not found")

    with pytest.raises(ImageMissingError) as error:
        resolve_image_invoke("ibkr", IBKR, fetch)
    assert IBKR.image in str(error.value) and IBKR.commit in str(error.value)


def test_any_other_invoke_error_stops_too():
    def fetch(artifact):
        raise InvokeFailed("googleapi: Error 403: Permission 'artifactregistry.dockerimages.get' denied")

    with pytest.raises(ImageLookupError, match="403"):
        resolve_image_invoke("ibkr", IBKR, fetch)


@pytest.mark.parametrize(
    "message",
    [
        "Error 404: Project 'interactivebrokersquant' not found or permission denied.",
        "googleapi: Error 403: PERMISSION_DENIED: repository not found or access denied",
    ],
)
def test_an_invoke_answer_that_says_permission_denied_is_never_a_missing_image(message):
    def fetch(artifact):
        raise InvokeFailed(message)

    with pytest.raises(ImageLookupError, match="could not be looked up"):
        resolve_image_invoke("ibkr", IBKR, fetch)


def test_invoke_answer_for_another_repository_stops():
    with pytest.raises(ImageLookupError, match="describes"):
        resolve_image_invoke("ibkr", IBKR, lambda artifact: {"self_link": f"us-central1-docker.pkg.dev/x/y/z@{DIGEST}"})
    with pytest.raises(ImageLookupError, match="self_link"):
        resolve_image_invoke("ibkr", IBKR, lambda artifact: {"name": "no link"})


def test_invoke_resolves_the_digest_and_pins_the_revision():
    seen = []

    def fetch(artifact):
        seen.append(artifact)
        return {"self_link": f"{REPOSITORY}@{DIGEST}", "tags": [IBKR.commit]}

    resolved = resolve_image_invoke("ibkr", IBKR, fetch)
    assert seen[0].image_name.endswith(f":{IBKR.commit}")
    revision = ServiceRevision(IBKR.image, IBKR.commit, ServiceEnv({}), None)
    assert pin_digest(revision, resolved).image == f"{REPOSITORY}@{DIGEST}"
    held = ServiceRevision(f"{REPOSITORY}:older", "0" * 40, ServiceEnv({}), None)
    assert pin_digest(held, resolved) == held


def test_non_artifact_registry_image_cannot_be_verified():
    spec = IBKR.model_copy(update={"image": "gcr.io/interactivebrokersquant/cloud-run:" + IBKR.commit})
    with pytest.raises(ImageLookupError, match="not an Artifact Registry image"):
        resolve_image_invoke("ibkr", spec, lambda artifact: {})


def test_pruned_repository_warning():
    warning = pruned_repository_warning(IBKR, CONFIG.release)
    assert warning is not None and "cloud-run-source-deploy/interactivebrokersplatform" in warning
    assert "cleanup policy" in warning
    kept = IBKR.model_copy(update={"image": f"us-central1-docker.pkg.dev/interactivebrokersquant/releases/ibkr:{IBKR.commit}"})
    assert pruned_repository_warning(kept, CONFIG.release) is None


# --- a saved answer proves a tag only when it names the tag ---------------------------------------------


def test_a_describe_document_of_another_tag_does_not_prove_the_configured_tag(tmp_path):
    # `gcloud artifacts docker images describe <repo>:<other tag>` reads exactly like one of the configured
    # tag: same repository, some digest, no tag. It proves that digest exists, not what the tag names.
    other_tag = f"{REPOSITORY}:{'f' * 40}"
    directory = tmp_path / "images"
    write_json(directory / "img.json", image_describe(other_tag))
    check = read_images_path(directory, {"ibkr": IBKR})["ibkr"]
    assert check.status == "unverified" and not check.ok
    assert "names no tag" in check.message and "--include-tags" in check.message


def test_a_tag_listing_proves_the_tag_it_names_and_only_that_one(tmp_path):
    from tests.fixtures.live_json import image_listing

    directory = tmp_path / "images"
    listing = image_listing(f"{REPOSITORY}:{'f' * 40}") + image_listing(IBKR.image, digest=DIGEST, tags=["latest", IBKR.commit])
    write_json(directory / "list.json", listing)
    check = read_images_path(directory, {"ibkr": IBKR})["ibkr"]
    assert check.ok and check.resolved.digest == DIGEST
    only_other = tmp_path / "other"
    write_json(only_other / "list.json", image_listing(f"{REPOSITORY}:{'f' * 40}"))
    assert read_images_path(only_other, {"ibkr": IBKR})["ibkr"].status == "missing"
    text_tags = tmp_path / "text"
    write_json(text_tags / "list.json", [{"package": REPOSITORY, "version": DIGEST, "tags": f"latest, {IBKR.commit}"}])
    assert read_images_path(text_tags, {"ibkr": IBKR})["ibkr"].resolved.digest == DIGEST


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"package": REPOSITORY, "version": "sha256:abc", "tags": []}, "version is not sha256"),
        ({"package": REPOSITORY, "version": DIGEST, "tags": {"a": 1}}, "tags is neither a list"),
        ({"package": REPOSITORY, "version": DIGEST, "tags": [1]}, "tags holds something other than tag names"),
    ],
)
def test_a_malformed_tag_listing_is_bad_input(tmp_path, entry, message):
    write_json(tmp_path / "i" / "list.json", [entry])
    with pytest.raises(ImageInputError, match=message):
        read_images_path(tmp_path / "i", {"ibkr": IBKR})
