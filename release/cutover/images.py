"""The image a service is about to run: does it exist, and which digest does its tag name right now?

Two sources answer, like live state: `gcloud artifacts docker images describe <image> --format=json` for
the CLI (`plan --images FILE|DIR|gcloud`), and the `gcp.artifactregistry.get_docker_image` invoke for the
Pulumi program. Both become a `ResolvedImage`; the program deploys `<repository>@<digest>`, so a tag
pushed again between `plan` and `pulumi up` cannot change what runs.

A document that describes another image is bad input (exit 2), never "close enough"; an image that was
not checked is "unverified", never "probably there".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional

from components.env import ServiceRevision
from release.config import IMAGE_DIGEST_PATTERN, ReleaseBundle, ServiceSpec, split_image
from release.cutover import gcloud
from release.local_files import InputFileError, input_files, json_items, load_json, read_text

# <location>-docker.pkg.dev/<project>/<repository>/<image path>: the only registry the invoke can read.
ARTIFACT_REGISTRY_HOST = re.compile(r"(?P<location>[a-z]+-[a-z]+[0-9]+|[a-z]+)-docker\.pkg\.dev")
# The repository `gcloud run deploy --source` and the platforms' deploy workflows push to; the workflow
# deletes every image of its package but the newest after each deploy (docs/platform-facts.md §2).
WORKFLOW_REPOSITORY = "cloud-run-source-deploy"
MAX_DOCUMENT_BYTES = 1_000_000

ImageStatus = Literal["present", "missing", "unverified"]


class ImageInputError(ValueError):
    """An --images document or answer that cannot be trusted: bad input, exit 2."""


@dataclass(frozen=True)
class ArtifactImage:
    """An Artifact Registry image reference split the way the `get_docker_image` invoke takes it."""

    location: str
    project: str
    repository_id: str
    image_name: str
    """The package path inside the repository with its tag or digest (``pkg/cloud-run:<sha>``)."""


@dataclass(frozen=True)
class ImageRef:
    """`<repository>:<tag>` or `<repository>@sha256:<digest>`; the config loader has checked the format."""

    repository: str
    tag: Optional[str]
    digest: Optional[str]

    @property
    def text(self) -> str:
        return f"{self.repository}@{self.digest}" if self.digest else f"{self.repository}:{self.tag}"

    def artifact(self) -> Optional[ArtifactImage]:
        """The invoke's arguments; None for a registry the invoke cannot read (it can't be verified)."""
        host, _, path = self.repository.partition("/")
        match = ARTIFACT_REGISTRY_HOST.fullmatch(host)
        parts = path.split("/")
        if match is None or len(parts) < 3:
            return None
        reference = f"@{self.digest}" if self.digest else f":{self.tag}"
        return ArtifactImage(match["location"], parts[0], parts[1], "/".join(parts[2:]) + reference)


def parse_image(text: str) -> ImageRef:
    """An image reference as repository plus tag or digest; ValueError for anything else."""
    repository, reference = split_image(text)
    if reference is None:
        raise ValueError(f"{text!r} has no tag or digest; write <repository>:<tag> or <repository>@sha256:<digest>")
    if reference.startswith("sha256:"):
        if not IMAGE_DIGEST_PATTERN.fullmatch(reference):
            raise ValueError(f"{text!r} has a malformed digest; write sha256: and 64 lowercase hex digits")
        return ImageRef(repository, None, reference)
    return ImageRef(repository, reference, None)


@dataclass(frozen=True)
class ResolvedImage:
    """An image that exists: the configured reference and the digest it resolved to."""

    image: str
    repository: str
    tag: Optional[str]
    digest: str
    source: str

    @property
    def deployed(self) -> str:
        """What the program gives Cloud Run: the digest, so a re-pushed tag cannot change what runs."""
        return f"{self.repository}@{self.digest}"


@dataclass(frozen=True)
class ImageCheck:
    """The answer for one service's configured image."""

    key: str
    image: str
    status: ImageStatus
    message: str
    resolved: Optional[ResolvedImage] = None

    @property
    def ok(self) -> bool:
        return self.status == "present"


def unverified(key: str, spec: ServiceSpec, why: str) -> ImageCheck:
    return ImageCheck(key, spec.image, "unverified", why)


def missing(key: str, spec: ServiceSpec, where: str) -> ImageCheck:
    return ImageCheck(
        key,
        spec.image,
        "missing",
        f"{spec.image} does not exist ({where}); build and push it from commit {spec.commit} (or restore it), then plan again",
    )


def resolved_from(spec: ServiceSpec, repository: str, digest: str, source: str, field: str) -> ResolvedImage:
    """Check that an answer is about the configured image, and turn it into a ResolvedImage."""
    ref = parse_image(spec.image)
    if repository != ref.repository:
        raise ImageInputError(
            f"{source}: describes {repository}, not {ref.repository} ({field}); describe the image the stack config names"
        )
    if not IMAGE_DIGEST_PATTERN.fullmatch(digest):
        raise ImageInputError(f"{source}: digest {digest[:80]!r} is not sha256:<64 hex>; pass gcloud's JSON unchanged")
    if ref.digest is not None and ref.digest != digest:
        raise ImageInputError(f"{source}: describes {repository}@{digest}, not {ref.text} ({field}); describe {ref.text}")
    return ResolvedImage(image=spec.image, repository=repository, tag=ref.tag, digest=digest, source=source)


def from_describe_json(document: Any, source: str) -> tuple[str, str]:
    """(repository, digest) from `gcloud artifacts docker images describe --format=json` output."""
    summary = document.get("image_summary") if isinstance(document, Mapping) else None
    qualified = summary.get("fully_qualified_digest") if isinstance(summary, Mapping) else None
    if not isinstance(qualified, str) or "@" not in qualified:
        raise ImageInputError(
            f"{source}: has no image_summary.fully_qualified_digest; write it with "
            "gcloud artifacts docker images describe <image> --format=json"
        )
    repository, _, digest = qualified.partition("@")
    stated = summary.get("digest") if isinstance(summary, Mapping) else None
    if stated is not None and stated != digest:
        raise ImageInputError(f"{source}: image_summary.digest and fully_qualified_digest disagree; pass gcloud's JSON unchanged")
    return repository, digest


LISTING_COMMAND = "gcloud artifacts docker images list <repository>/<package> --include-tags --format=json"


def from_listing_entry(document: Mapping[str, Any], source: str) -> tuple[str, str, frozenset[str]]:
    """(repository, digest, tags) from one entry of `gcloud artifacts docker images list --include-tags
    --format=json`: the one saved answer that binds tags to a digest (`tags` a list, or gcloud's
    comma-separated text)."""
    package, version, tags = document.get("package"), document.get("version"), document.get("tags")
    if not isinstance(package, str) or not isinstance(version, str):
        raise ImageInputError(f"{source}: has no package and version; write it with {LISTING_COMMAND}")
    if not IMAGE_DIGEST_PATTERN.fullmatch(version):
        raise ImageInputError(f"{source}: version is not sha256:<64 hex>; pass gcloud's JSON unchanged")
    if tags is None:
        names: list[Any] = []
    elif isinstance(tags, str):
        names = [name.strip() for name in tags.split(",") if name.strip()]
    elif isinstance(tags, list):
        names = tags
    else:
        raise ImageInputError(f"{source}: tags is neither a list nor gcloud's comma-separated text; pass gcloud's JSON unchanged")
    if not all(isinstance(name, str) for name in names):
        raise ImageInputError(f"{source}: tags holds something other than tag names; pass gcloud's JSON unchanged")
    return package, version, frozenset(names)


def tag_unproved(key: str, spec: ServiceSpec, where: str) -> ImageCheck:
    return unverified(
        key,
        spec,
        f"not verified: {where} describes a digest of {split_image(spec.image)[0]} but names no tag, so it does not prove "
        f"that {spec.image_tag} is that digest (a describe document of another tag reads the same); pass --images gcloud, "
        f"or the output of {LISTING_COMMAND}",
    )


def _load(path: Path) -> Any:
    # The shared operator-file reader: a FIFO or /dev/zero is refused, not read; non-UTF-8 and deep nesting
    # are bad input naming the file, not a traceback.
    fix = "write it with gcloud artifacts docker images describe <image> --format=json"
    try:
        return load_json(read_text(path, MAX_DOCUMENT_BYTES, fix), str(path), fix)
    except FileNotFoundError as error:
        raise ImageInputError(f"{path}: cannot be read ({error.strerror}); check the --images path") from None
    except InputFileError as error:
        raise ImageInputError(str(error)) from None


def read_images_path(path: Path, services: Mapping[str, ServiceSpec]) -> dict[str, ImageCheck]:
    """Image answers from files (one document, a list, or a directory of them), matched to services by
    repository: describe documents (`gcloud artifacts docker images describe`), which prove a digest, and
    tag listings (`gcloud artifacts docker images list --include-tags`), which prove what a tag names.

    A describe document names no tag, so for an image configured by tag it proves nothing about the tag:
    such a service stays unverified unless a listing entry binds its tag. A configured image that no
    document mentions is reported missing: the operator described every image there is.
    """
    try:
        files = input_files(
            path, "write one image describe JSON per image into it", "pass a describe JSON file, a directory of them, or 'gcloud'"
        )
    except InputFileError as error:
        raise ImageInputError(str(error)) from None
    by_repository: dict[str, list[str]] = {}
    for key, spec in services.items():
        by_repository.setdefault(split_image(spec.image)[0], []).append(key)
    found: dict[str, ImageCheck] = {}
    untagged: dict[str, str] = {}
    for file in files:
        for item, where in json_items(_load(file), file):
            listing = isinstance(item, Mapping) and "package" in item and "image_summary" not in item
            if listing:
                repository, digest, tags = from_listing_entry(item, where)
            else:
                repository, digest = from_describe_json(item, where)
                tags = None
            keys = by_repository.get(repository)
            if keys is None:
                if listing:
                    continue  # a listing holds every package version; only the configured ones matter
                configured = ", ".join(f"services.{k}.image" for k in sorted(services))
                raise ImageInputError(
                    f"{where}: describes {repository}, which no service's image names ({configured}); remove it or check --stack"
                )
            for key in keys:
                spec = services[key]
                ref = parse_image(spec.image)
                if ref.digest is None and (tags is None or ref.tag not in tags):
                    if tags is None:
                        untagged.setdefault(key, where)
                    continue  # a describe document, or a listing entry of another version: not this tag
                if ref.digest is not None and listing and ref.digest != digest:
                    continue
                resolved = resolved_from(spec, repository, digest, where, f"services.{key}.image")
                earlier = found.get(key)
                if earlier is not None and earlier.resolved is not None and earlier.resolved.digest != digest:
                    raise ImageInputError(
                        f"{where}: services.{key}.image resolves to {digest}, but {earlier.resolved.source} says "
                        f"{earlier.resolved.digest}; keep one describe output per image"
                    )
                found[key] = ImageCheck(key, spec.image, "present", f"{resolved.deployed} (from {where})", resolved)
    return {
        key: found.get(key)
        or (tag_unproved(key, spec, untagged[key]) if key in untagged else missing(key, spec, f"no describe document for it in {path}"))
        for key, spec in services.items()
    }


def gcloud_describe_command(spec: ServiceSpec) -> list[str]:
    return ["gcloud", "artifacts", "docker", "images", "describe", spec.image, "--format=json"]


def read_images_gcloud(services: Mapping[str, ServiceSpec], runner: gcloud.Runner = gcloud.run_gcloud) -> dict[str, ImageCheck]:
    """Describe every configured image through gcloud; only gcloud's not-found answer means missing, any other failure is an error."""
    checks: dict[str, ImageCheck] = {}
    for key, spec in services.items():
        command = gcloud_describe_command(spec)
        where = " ".join(command)
        try:
            document = gcloud.describe(command, runner, "check gcloud auth login and the image path", MAX_DOCUMENT_BYTES)
        except gcloud.GcloudError as error:
            raise ImageInputError(str(error)) from None
        if document is None:
            checks[key] = missing(key, spec, "gcloud: not found")
            continue
        repository, digest = from_describe_json(document, where)
        resolved = resolved_from(spec, repository, digest, where, f"services.{key}.image")
        checks[key] = ImageCheck(key, spec.image, "present", f"{resolved.deployed} (gcloud)", resolved)
    return checks


NOT_GIVEN = "not verified: no --images given; pass --images gcloud, or a file/directory of `gcloud artifacts docker images describe <image> --format=json` output"


@dataclass(frozen=True)
class ImagesInput:
    checks: Mapping[str, ImageCheck]
    source: str


def read_images(arg: Optional[str], services: Mapping[str, ServiceSpec], runner: gcloud.Runner = gcloud.run_gcloud) -> ImagesInput:
    """`--images`: None (every image unverified), 'gcloud', or a describe JSON file / directory."""
    if arg is None:
        return ImagesInput({key: unverified(key, spec, NOT_GIVEN) for key, spec in services.items()}, "none given")
    if arg == gcloud.ARGUMENT:
        return ImagesInput(read_images_gcloud(services, runner), "gcloud artifacts docker images describe")
    return ImagesInput(read_images_path(Path(arg), services), arg)


# --- the Pulumi program's invoke ----------------------------------------------------------------


class ImageMissingError(Exception):
    """The image does not exist: the run stops, naming the image and the commit to build it from."""


class ImageLookupError(Exception):
    """The image could not be looked up (permission, network, an answer about something else)."""


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def is_invoke_not_found(error: BaseException) -> bool:
    """The provider's "no such image" (a 404); an answer that also says permission denied or 403 proves
    nothing about the image ("Project not found or permission denied" is GCP's answer to a caller who may
    not look), so it is a lookup failure, never "missing"."""
    text = str(error)
    if any(marker in text for marker in (*gcloud.DENIED_MARKERS, "Error 403", "403 Forbidden")):
        return False
    return "not found" in text.lower() or "Error 404" in text


def resolve_image_invoke(key: str, spec: ServiceSpec, fetch: Callable[[ArtifactImage], Any]) -> ResolvedImage:
    """Resolve the configured image through the `get_docker_image` invoke; every doubt stops the run."""
    ref = parse_image(spec.image)
    artifact = ref.artifact()
    where = f"services.{key}.image"
    if artifact is None:
        raise ImageLookupError(
            f"{where}: {spec.image} is not an Artifact Registry image (<location>-docker.pkg.dev/<project>/"
            "<repository>/<image>), so its existence cannot be checked; push it to Artifact Registry"
        )
    try:
        result = fetch(artifact)
    except Exception as error:  # the provider reports every failure, "not found" included, as an invoke error
        if is_invoke_not_found(error):
            raise ImageMissingError(
                f"{where}: image {spec.image} does not exist; build and push it from commit {spec.commit} "
                "(or restore it), then run again. Nothing was changed."
            ) from None
        raise ImageLookupError(
            f"{where}: image {spec.image} could not be looked up ({str(error)[:300]}); check the provider's "
            "credentials (artifactregistry.dockerimages.get) and the image path. Nothing was changed."
        ) from None
    self_link = _field(result, "self_link") or _field(result, "selfLink")
    if not isinstance(self_link, str) or "@" not in self_link:
        raise ImageLookupError(f"{where}: get_docker_image answered without a self_link for {spec.image}; nothing was changed")
    repository, _, digest = self_link.partition("@")
    try:
        return resolved_from(spec, repository, digest, "gcp.artifactregistry.get_docker_image", where)
    except ImageInputError as error:
        raise ImageLookupError(f"{error}. Nothing was changed.") from None


def pin_digest(revision: ServiceRevision, resolved: ResolvedImage) -> ServiceRevision:
    """The revision with the configured image replaced by its digest; a held live image is left alone."""
    if revision.image != resolved.image:
        return revision
    return replace(revision, image=resolved.deployed)


def pruned_repository_warning(spec: ServiceSpec, bundle: ReleaseBundle) -> Optional[str]:
    """A warning when the image sits where the platform's deploy workflow deletes all but the newest image."""
    artifact = parse_image(spec.image).artifact()
    if artifact is None or artifact.repository_id != WORKFLOW_REPOSITORY:
        return None
    package = artifact.image_name.split("/", 1)[0].split(":", 1)[0].split("@", 1)[0]
    if package != bundle.repositories.for_platform(spec.platform).lower():
        return None
    return (
        f"{spec.image} is in {WORKFLOW_REPOSITORY}/{package}, which the {spec.platform} deploy workflow prunes after "
        "every deploy (all but the newest image are deleted): a rollback to this image may find nothing. Keep "
        "release images with an Artifact Registry cleanup policy that keeps tagged releases, or copy them to a "
        "separate repository (README: Keeping release images)"
    )
