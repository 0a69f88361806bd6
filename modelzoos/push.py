"""Push a hub folder to a dataset repository on the Hugging Face Hub.

`push_hub(folder, repo_id)` checks what it can without the network first (a hub folder, a valid
id, a token), then creates the dataset repository if there is none and uploads the folder with
`HfApi.upload_folder`. The Hub skips files it already holds unchanged and makes no commit when
nothing changed; an interrupted upload resumes when the same push runs again, because content
uploaded before the failure is kept by the Hub and not sent again.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import huggingface_hub
import yaml
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)
from huggingface_hub.utils import filter_repo_objects, validate_repo_id

from . import __version__
from .errors import ModelzoosError
from .zoo_dir import ZooDir

# Hidden entries are never zoo content: build's staging folders (.hub-*), atomic_write's temporary
# files, caches (.cache), editor and OS litter. upload_folder matches the patterns against paths
# relative to the folder with fnmatch, where `*` matches `/` too, so these two cover every depth.
HIDDEN = (".*", "*/.*")


@dataclasses.dataclass(frozen=True)
class HubFile:
    path: str  # in the repository, "/"-separated
    size: int  # bytes


@dataclasses.dataclass(frozen=True)
class PushResult:
    repo_id: str
    revision: str  # the branch pushed to
    url: str  # the repository's page at that branch
    files: list[HubFile]  # the hub folder's files: uploaded where they differ from the repository's
    commit_url: str | None  # the new commit; None on a dry run and when nothing changed
    created: bool = False  # this push created the repository
    private: bool | None = None  # the repository's visibility; None on a dry run
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return self.commit_url is not None


def push_hub(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    dry_run: bool = False,
    token: str | None = None,
) -> PushResult:
    """Upload the hub folder `folder` (what `modelzoos build DIR` wrote to DIR/hub) to the dataset
    repository `repo_id` ("ORG/NAME"), at branch `revision` (created if missing; default: main).

    `private` applies when the push creates the repository; an existing public repository is
    refused rather than uploaded to. `dry_run` only lists the files, offline and without a token.
    The result's `commit_url` is None when the repository already held every file unchanged.
    """
    root = _hub_folder(folder)
    _check_repo_id(repo_id)
    files = _hub_files(root)
    branch = revision or constants.DEFAULT_REVISION
    if dry_run:
        return PushResult(repo_id, branch, _repo_url(constants.ENDPOINT, repo_id, branch), files, None, dry_run=True)
    token = token or huggingface_hub.get_token()
    if token is None:
        raise ModelzoosError(
            "no Hugging Face token: run `hf auth login` or set HF_TOKEN (the token needs write access)"
        )
    api = HfApi(token=token, library_name="modelzoos", library_version=__version__)
    try:
        return _push(api, root, files, repo_id, private=private, branch=branch)
    except OfflineModeIsEnabled:  # before ConnectionError: it is one
        raise ModelzoosError(
            "cannot push: offline mode is on (HF_HUB_OFFLINE is set); unset it and run the same command again"
        ) from None
    except HfHubHTTPError as e:
        raise _http_error(e, repo_id) from None
    except _classes(("hf_xet", "XetAuthenticationError")) as e:  # the storage backend refused the token
        raise ModelzoosError(_refused_token(repo_id, str(e))) from None
    except _classes(*_NETWORK_ERRORS) as e:
        raise ModelzoosError(_failed(repo_id, f"{type(e).__name__}: {e}")) from None
    except ValueError as e:  # upload_folder checks the card's metadata with the Hub before sending anything
        if "Invalid metadata in README.md" not in str(e):
            raise
        raise ModelzoosError(
            f"the Hub refused the dataset card's metadata ({root / 'README.md'}): {e}; rebuild the hub "
            "folder with `modelzoos build DIR` (or fix the card's YAML header) and push again"
        ) from None


def _push(api: HfApi, root: Path, files: list[HubFile], repo_id: str, *, private: bool, branch: str) -> PushResult:
    try:
        is_private = api.repo_info(repo_id, repo_type="dataset").private
        exists = True
    except GatedRepoError:  # exists, though this token may not read it; the upload will say
        is_private, exists = None, True
    except RepositoryNotFoundError:
        is_private, exists = None, False
    if not exists:
        if api.repo_exists(repo_id, repo_type="model"):
            # The Hub keeps models and datasets apart, so this would make a second repository of
            # the same name beside the model: almost always a mistyped id.
            raise ModelzoosError(
                f"{repo_id} is a model repository on the Hub and there is no dataset of that name; a zoo is "
                f"published as a dataset. Push to another ORG/NAME, or, to have a dataset beside the model, "
                f"create it first (`hf repos create {repo_id} --repo-type dataset`) and push again"
            )
        # private=None lets an organization's default visibility apply to a public push
        api.create_repo(repo_id, repo_type="dataset", private=True if private else None, exist_ok=True)
    elif private and is_private is False:
        # Uploading a zoo meant to be private into a public repository cannot be undone; stop.
        raise ModelzoosError(
            f"{repo_id} exists and is public, and --private only applies when the push creates the repository: "
            f"make it private first (`hf repos settings {repo_id} --repo-type dataset --private`) or push "
            "without --private"
        )
    if branch != constants.DEFAULT_REVISION and not branch.startswith("refs/"):  # refs/pr/N exist already
        api.create_branch(repo_id, branch=branch, repo_type="dataset", exist_ok=True)
    head = api.repo_info(repo_id, repo_type="dataset", revision=branch)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=root,
        repo_type="dataset",
        revision=branch,
        ignore_patterns=list(HIDDEN),  # a copy: upload_folder extends the list it is given
        # The folder is the whole dataset: a rebuilt zoo may have other shards (more models, models
        # left out), and a stale shard matching a config's glob would load as extra rows.
        delete_patterns=["*"],
        commit_message=f"Upload {_zoo_name(root)} with modelzoos {__version__}",
    )
    # With every file unchanged, upload_folder makes no commit and returns the branch's head.
    changed = commit.oid != head.sha
    return PushResult(
        repo_id, branch, _repo_url(api.endpoint, repo_id, branch), files, commit.commit_url if changed else None,
        created=not exists, private=head.private,
    )


def _hub_folder(folder: str | Path) -> Path:
    root = Path(folder)
    if not root.is_dir():
        raise ModelzoosError(f"{root}: no such folder; push the hub folder that `modelzoos build DIR` writes (DIR/hub)")
    zoo = ZooDir(root)
    if zoo.models_dir.exists() or (zoo.spec_path.is_file() and not (root / "metadata").is_dir()):
        # Its checkpoints, optimizer states and image cache are not for publishing.
        if ZooDir(zoo.hub_dir).is_hub_folder():
            how = f"push its hub folder: `modelzoos push {zoo.hub_dir} --repo-id ORG/NAME`"
        else:
            how = f"build its hub folder with `modelzoos build {root}`, then push {zoo.hub_dir}"
        raise ModelzoosError(f"{root} is a raw zoo directory, not a hub folder; {how}")
    if not zoo.is_hub_folder() or not (root / "README.md").is_file():
        raise ModelzoosError(
            f"{root} is not a hub folder (no metadata/ or no README.md): write one with `modelzoos build DIR` "
            "and push DIR/hub"
        )
    return root


def _hub_files(root: Path) -> list[HubFile]:
    """The files upload_folder will consider, found the way it finds them (hf_api.py,
    `_prepare_upload_folder_additions`) and filtered by the same patterns, so a dry run lists
    exactly what a push sends."""
    found = {p.relative_to(root).as_posix(): p for p in sorted(root.glob("**/*")) if p.is_file()}
    return [HubFile(rel, found[rel].stat().st_size) for rel in filter_repo_objects(found, ignore_patterns=list(HIDDEN))]


def _check_repo_id(repo_id: str) -> None:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise ModelzoosError(f"--repo-id {repo_id!r} is not a valid Hub repository id: {e}") from None
    if "/" not in repo_id:  # a bare NAME would land in whichever account the token belongs to
        raise ModelzoosError(f"--repo-id {repo_id!r}: give the owner too, as ORG/NAME (a user or organization)")


def _zoo_name(root: Path) -> str:
    try:
        name = yaml.safe_load((root / "zoo.yaml").read_text()).get("name")
    except (OSError, yaml.YAMLError, AttributeError):
        name = None
    return f"zoo {name}" if name else "a zoo"


def _repo_url(endpoint: str, repo_id: str, branch: str) -> str:
    url = f"{endpoint}/datasets/{repo_id}"
    return url if branch == constants.DEFAULT_REVISION else f"{url}/tree/{branch}"


def _failed(repo_id: str, reason: str) -> str:
    return (
        f"the push to {repo_id} failed ({reason}); what was uploaded before the failure is kept by the Hub "
        "and is not sent again: run the same command again to resume"
    )


def _http_error(e: HfHubHTTPError, repo_id: str) -> ModelzoosError:
    status = e.response.status_code if e.response is not None else None
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if getattr(e, "server_message", None) and e.server_message not in first:  # the Hub's own words say most
        first = f"{first}: {' '.join(e.server_message.split())}"
    if status in (401, 403):
        return ModelzoosError(_refused_token(repo_id, first))
    if status is None or status == 429 or status >= 500:
        return ModelzoosError(_failed(repo_id, first))
    return ModelzoosError(f"the Hub refused the push to {repo_id}: {' '.join(str(e).split())}")


def _refused_token(repo_id: str, reason: str) -> str:
    return (
        f"the Hub refused the token for {repo_id} ({reason}): it needs write access to {repo_id.split('/')[0]}; "
        "make a write token at https://huggingface.co/settings/tokens, then `hf auth login` or set HF_TOKEN"
    )


# Connection failures as each transport raises them: hf_xet raises the builtin ConnectionError and
# TimeoutError; huggingface_hub sends its requests with httpx2 in 2.x, httpx in 1.x, requests in 0.x.
_NETWORK_ERRORS = (
    ("builtins", "ConnectionError"), ("builtins", "TimeoutError"), ("httpx2", "TransportError"),
    ("httpx", "TransportError"), ("requests", "ConnectionError"), ("requests", "Timeout"),
)


def _classes(*names: tuple[str, str]) -> tuple[type[BaseException], ...]:
    """The exception classes of those modules that are installed (imported only when an error is
    being handled)."""
    found = []
    for module, name in names:
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(found)
