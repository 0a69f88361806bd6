"""`modelzoos push`: the Hub's side replaced by a fake at HfApi's network methods, so the uploaded
operations can be listed and checked offline; and one live push, run only when HF_TOKEN and
MODELZOOS_TEST_REPO are set.

The fake replaces what `upload_folder` calls on the network in huggingface_hub 2.x: `_validate_yaml`
(it posts the card's metadata), then `_upload_pipeline.pipelined_upload` when hf_xet is installed,
`create_commit` when not. Anything that slips past it meets HF_HUB_OFFLINE=1 (conftest.py), which
fails the push instead of reaching the network.
"""

import contextlib
import hashlib
import os
import shutil
import uuid
from pathlib import Path

import httpx2
import huggingface_hub
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from huggingface_hub.hf_api import CommitInfo, DatasetInfo

from modelzoos.cli import main
from modelzoos.errors import ModelzoosError
from modelzoos.push import push_hub

REPO = "someone/tiny-zoo"
LITTER = [
    ".hub-abc123/README.md", "metadata/.train-00000-of-00001.parquet.x1y2.tmp", ".cache/huggingface/lock", ".DS_Store"
]


def _http_error(cls, status: int, url: str = "https://huggingface.co/api/datasets/someone/tiny-zoo"):
    response = httpx2.Response(status, request=httpx2.Request("GET", url))
    return cls(f"{status} Client Error for url: {url}", response=response)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FakeHub:
    """Repositories in memory: (type, id) -> {"private": bool, "branches": {name: (sha, {path: digest})}}."""

    def __init__(self, monkeypatch):
        self.repos: dict = {}
        self.calls: list[tuple[str, dict]] = []
        self.commits: list[dict] = []  # every upload that reached the commit step, with its operations
        self.fail: BaseException | None = None  # raised by the next upload
        for name in ("repo_info", "create_repo", "create_branch", "_validate_yaml", "create_commit", "list_repo_files"):
            monkeypatch.setattr(HfApi, name, getattr(self, name.lstrip("_")))
        monkeypatch.setattr("huggingface_hub._upload_pipeline.pipelined_upload", self.pipelined_upload)
        monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_fake")

    def add(self, repo_type: str, repo_id: str, private: bool = False) -> None:
        self.repos[(repo_type, repo_id)] = {"private": private, "branches": {"main": ("0" * 40, {})}}

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def repo_info(self, repo_id, *, revision=None, repo_type=None, token=None, **kwargs):
        self.calls.append(("repo_info", dict(repo_id=repo_id, revision=revision, repo_type=repo_type)))
        repo = self.repos.get((repo_type or "model", repo_id))
        if repo is None:
            raise _http_error(RepositoryNotFoundError, 404)
        sha, _ = repo["branches"][revision or "main"]
        return DatasetInfo(id=repo_id, sha=sha, private=repo["private"])

    def create_repo(self, repo_id, *, token=None, private=None, repo_type=None, exist_ok=False, **kwargs):
        call = dict(repo_id=repo_id, private=private, repo_type=repo_type, exist_ok=exist_ok)
        self.calls.append(("create_repo", call))
        if (repo_type or "model", repo_id) not in self.repos:
            self.add(repo_type or "model", repo_id, private=bool(private))

    def create_branch(self, repo_id, *, branch, revision=None, token=None, repo_type=None, exist_ok=False):
        call = dict(repo_id=repo_id, branch=branch, repo_type=repo_type, exist_ok=exist_ok)
        self.calls.append(("create_branch", call))
        branches = self.repos[(repo_type or "model", repo_id)]["branches"]
        branches.setdefault(branch, branches["main"])

    def list_repo_files(self, repo_id, *, revision=None, repo_type=None, token=None):
        self.calls.append(("list_repo_files", dict(repo_id=repo_id, revision=revision, repo_type=repo_type)))
        return [".gitattributes", *self.repos[(repo_type or "model", repo_id)]["branches"][revision or "main"][1]]

    def validate_yaml(self, content, *, repo_type=None, token=None):
        self.calls.append(("validate_yaml", dict(repo_type=repo_type)))

    def pipelined_upload(self, api, *, repo_id, repo_type, add_operations, delete_operations, revision=None, **kwargs):
        return self._commit("pipelined_upload", repo_id, repo_type, revision, [*delete_operations, *add_operations])

    def create_commit(self, repo_id, operations, *, repo_type=None, revision=None, **kwargs):
        return self._commit("create_commit", repo_id, repo_type, revision, list(operations))

    def _commit(self, via, repo_id, repo_type, revision, operations):
        """As the Hub does: files it holds unchanged are dropped, and no commit is made when none is left."""
        self.calls.append((via, dict(repo_id=repo_id, repo_type=repo_type, revision=revision)))
        self.commits.append(dict(repo_type=repo_type, revision=revision, operations=operations))
        if self.fail is not None:
            fail, self.fail = self.fail, None
            raise fail
        branches = self.repos[(repo_type or "model", repo_id)]["branches"]
        sha, files = branches[revision or "main"]
        new = {op.path_in_repo: _digest(Path(op.path_or_fileobj)) for op in operations if isinstance(op, CommitOperationAdd)}
        gone = {op.path_in_repo for op in operations if isinstance(op, CommitOperationDelete)} & set(files)
        if gone or any(files.get(path) != digest for path, digest in new.items()):
            sha = hashlib.sha1(f"{sha}{sorted(new.items())}{sorted(gone)}".encode()).hexdigest()
            branches[revision or "main"] = (sha, {**{p: d for p, d in files.items() if p not in gone}, **new})
        url = f"https://huggingface.co/datasets/{repo_id}/commit/{sha}"
        return CommitInfo(commit_url=url, commit_message="", commit_description="", oid=sha)


@pytest.fixture
def hub(tiny_zoo, tmp_path):
    """A copy of the tiny zoo's hub folder, with the litter a push must leave behind."""
    _, zoo = tiny_zoo
    folder = tmp_path / "zoo" / "hub"
    shutil.copytree(zoo / "hub", folder)
    for name in LITTER:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("not for the Hub")
    return folder


@pytest.fixture
def fake(monkeypatch):
    return FakeHub(monkeypatch)


def _hub_files(folder: Path) -> dict[str, Path]:
    """What a hub folder should publish: every file, hidden ones (and those under hidden folders) aside."""
    return {
        p.relative_to(folder).as_posix(): p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


@pytest.mark.parametrize("xet", [True, False], ids=["xet-pipeline", "create_commit"])
def test_push_uploads_exactly_the_hub_folder_to_a_new_dataset(hub, fake, monkeypatch, capsys, xet):
    # upload_folder commits through the streamed pipeline with hf_xet installed, create_commit without
    monkeypatch.setattr("huggingface_hub.hf_api.is_xet_available", lambda: xet)
    assert main(["push", str(hub), "--repo-id", REPO]) == 0
    assert fake.names()[-1] == ("pipelined_upload" if xet else "create_commit")
    assert ("validate_yaml", dict(repo_type="dataset")) in fake.calls
    assert fake.calls[0] == ("repo_info", dict(repo_id=REPO, revision=None, repo_type="dataset"))
    assert ("repo_info", dict(repo_id=REPO, revision=None, repo_type="model")) in fake.calls  # a model of that id?
    assert ("create_repo", dict(repo_id=REPO, private=None, repo_type="dataset", exist_ok=True)) in fake.calls
    assert "create_branch" not in fake.names()
    [commit] = fake.commits
    assert commit["repo_type"] == "dataset" and commit["revision"] == "main"
    ops = commit["operations"]
    assert all(isinstance(op, CommitOperationAdd) for op in ops)
    expected = _hub_files(hub)
    assert sorted(op.path_in_repo for op in ops) == sorted(expected)
    assert {"README.md", "zoo.yaml", "layout.json", "metadata/train-00000-of-00001.parquet"} <= set(expected)
    assert any(p.startswith("weights/") for p in expected)
    for op in ops:  # the files themselves, from inside the folder
        assert Path(op.path_or_fileobj) == expected[op.path_in_repo].resolve()
    out = capsys.readouterr().out
    assert f"created the public dataset repository {REPO}" in out and f"({len(expected)} files," in out
    assert f"https://huggingface.co/datasets/{REPO}  (public)" in out and f'load_dataset("{REPO}")' in out


def test_unchanged_repush_changes_nothing(hub, fake, capsys):
    assert main(["push", str(hub), "--repo-id", REPO]) == 0
    head = fake.repos[("dataset", REPO)]["branches"]["main"][0]
    capsys.readouterr()
    assert main(["push", str(hub), "--repo-id", REPO]) == 0
    out = capsys.readouterr().out
    assert f"nothing changed: {REPO} (main) already holds these" in out and "created" not in out
    assert fake.repos[("dataset", REPO)]["branches"]["main"][0] == head
    assert fake.names().count("create_repo") == 1  # the second push found the dataset
    result = push_hub(hub, REPO)
    assert not result.changed and result.commit_url is None
    (hub / "README.md").write_text((hub / "README.md").read_text() + "\nOne more line.\n")
    result = push_hub(hub, REPO)
    assert result.changed and result.commit_url.endswith(fake.repos[("dataset", REPO)]["branches"]["main"][0])


def test_private_and_revision_pass_through(hub, fake):
    result = push_hub(hub, REPO, private=True, revision="zoo-v1")
    assert ("create_repo", dict(repo_id=REPO, private=True, repo_type="dataset", exist_ok=True)) in fake.calls
    assert ("create_branch", dict(repo_id=REPO, branch="zoo-v1", repo_type="dataset", exist_ok=True)) in fake.calls
    assert ("repo_info", dict(repo_id=REPO, revision="zoo-v1", repo_type="dataset")) in fake.calls
    assert fake.commits[0]["revision"] == "zoo-v1" and fake.commits[0]["repo_type"] == "dataset"
    assert result.private and result.created and result.revision == "zoo-v1"
    assert result.url == f"https://huggingface.co/datasets/{REPO}/tree/zoo-v1"
    assert fake.repos[("dataset", REPO)]["branches"]["main"][1] == {}  # main untouched


def test_private_push_to_an_existing_public_dataset_is_refused(hub, fake, capsys):
    fake.add("dataset", REPO, private=False)
    assert main(["push", str(hub), "--repo-id", REPO, "--private"]) == 1
    err = capsys.readouterr().err
    assert f"{REPO} exists and is public" in err and "--repo-type dataset --private" in err
    assert not fake.commits and "create_repo" not in fake.names()
    fake.repos[("dataset", REPO)]["private"] = True  # an existing private one takes a plain push as it is
    result = push_hub(hub, REPO)
    assert result.private and not result.created and result.changed


def test_dry_run_lists_the_files_offline_without_a_token(hub, fake, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert main(["push", str(hub), "--repo-id", REPO, "--dry-run"]) == 0
    assert fake.calls == []
    out = capsys.readouterr().out
    expected = _hub_files(hub)
    listed = [line.split()[-1] for line in out.splitlines()[:-1]]
    assert listed == sorted(expected)
    total = sum(p.stat().st_size for p in expected.values())
    assert f"{len(expected)} files, " in out.splitlines()[-1] and "would upload" in out
    result = push_hub(hub, REPO, dry_run=True)
    assert result.dry_run and sum(f.size for f in result.files) == total and fake.calls == []


def test_no_token_is_one_message_before_any_call(hub, fake, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert main(["push", str(hub), "--repo-id", REPO]) == 1
    err = capsys.readouterr().err
    assert err == (
        "modelzoos: error: no Hugging Face token: run `hf auth login` or set HF_TOKEN (the token needs write access)\n"
    )
    assert fake.calls == []


def test_an_id_of_a_model_repo_is_refused(hub, fake, capsys):
    fake.add("model", REPO)
    assert main(["push", str(hub), "--repo-id", REPO]) == 1
    err = capsys.readouterr().err
    assert f"{REPO} is a model repository on the Hub" in err and f"hf repos create {REPO} --repo-type dataset" in err
    assert not fake.commits and "create_repo" not in fake.names()
    fake.add("dataset", REPO)  # a dataset of that name too: that is where the zoo goes
    assert push_hub(hub, REPO).changed


@pytest.mark.parametrize(
    "failure",
    [
        httpx2.ConnectError("[Errno 111] Connection refused"),
        ConnectionError("connection reset by peer"),  # as hf_xet raises it
        _http_error(HfHubHTTPError, 503),
    ],
    ids=["httpx", "builtin", "503"],
)
def test_network_failure_says_rerun_and_a_rerun_resumes(hub, fake, capsys, failure):
    fake.fail = failure
    assert main(["push", str(hub), "--repo-id", REPO]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"modelzoos: error: the push to {REPO} failed (")
    assert "is kept by the Hub and is not sent again: run the same command again to resume" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert main(["push", str(hub), "--repo-id", REPO]) == 0
    assert "pushed " in capsys.readouterr().out
    assert len(fake.commits) == 2 and fake.names().count("create_repo") == 1


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_has_its_own_message(hub, fake, capsys, status):
    fake.fail = _http_error(HfHubHTTPError, status)
    assert main(["push", str(hub), "--repo-id", REPO]) == 1
    err = capsys.readouterr().err
    assert f"the Hub refused the token for {REPO} ({status} Client Error" in err and "write access to someone" in err


def test_offline_mode_is_named(hub, monkeypatch, capsys):
    # No fake: the first request meets huggingface_hub's offline guard, never the network.
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_fake")
    assert main(["push", str(hub), "--repo-id", REPO]) == 1
    assert "offline mode is on (HF_HUB_OFFLINE is set)" in capsys.readouterr().err


def test_only_hub_folders_and_valid_ids_are_pushed(tiny_zoo, hub, tmp_path, monkeypatch):
    def no_token_lookup():
        raise AssertionError("looked for a token before the local checks")

    monkeypatch.setattr(huggingface_hub, "get_token", no_token_lookup)
    _, zoo = tiny_zoo
    (tmp_path / "empty").mkdir()
    cases = [
        (zoo, f"{zoo} is a raw zoo directory, not a hub folder; push its hub folder: `modelzoos push {zoo / 'hub'}"),
        (hub.parent, f"{hub.parent} is not a hub folder (no metadata/ or no README.md)"),
        (tmp_path / "empty", "write one with `modelzoos build DIR` and push DIR/hub"),
        (tmp_path / "gone", "no such folder"),
    ]
    for folder, message in cases:
        with pytest.raises(ModelzoosError) as e:
            push_hub(folder, REPO)
        assert message in str(e.value)
    (hub / "README.md").unlink()
    with pytest.raises(ModelzoosError, match="is not a hub folder"):
        push_hub(hub, REPO)
    shutil.rmtree(hub)
    (hub.parent / "zoo.yaml").write_text("name: half-trained\n")
    with pytest.raises(ModelzoosError, match="build its hub folder with `modelzoos build"):
        push_hub(hub.parent, REPO)
    bad_ids = [
        ("tiny-zoo", "give the owner too, as ORG/NAME"),
        ("a/b/c", "not a valid Hub repository id"),
        ("someone/bad--name", "not a valid Hub repository id"),
    ]
    for repo_id, message in bad_ids:
        with pytest.raises(ModelzoosError, match=message):
            push_hub(zoo / "hub", repo_id)


@pytest.mark.skipif(
    not (os.environ.get("HF_TOKEN") and os.environ.get("MODELZOOS_TEST_REPO")),
    reason="a live push needs HF_TOKEN and MODELZOOS_TEST_REPO (a dataset repo id the token may write to)",
)
def test_live_push_loads_from_the_hub_and_a_repush_changes_nothing(hub, monkeypatch):
    import datasets

    # This test alone goes online; each library read its offline switch at import.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)
    repo, token = os.environ["MODELZOOS_TEST_REPO"], os.environ["HF_TOKEN"]
    branch = f"modelzoos-test-{uuid.uuid4().hex[:12]}"  # a run of its own, deleted after
    try:
        first = push_hub(hub, repo, revision=branch, token=token)
        assert first.changed
        remote = datasets.load_dataset(repo, "metadata", split="train", revision=branch, token=token)
        local = datasets.load_dataset(str(hub), "metadata", split="train")
        assert remote.num_rows == local.num_rows > 0
        assert not push_hub(hub, repo, revision=branch, token=token).changed
        remote_files = set(HfApi(token=token).list_repo_files(repo, repo_type="dataset", revision=branch))
        assert set(_hub_files(hub)) <= remote_files and not remote_files & set(LITTER)
    finally:
        with contextlib.suppress(HfHubHTTPError):  # a push that failed before making the branch
            HfApi(token=token).delete_branch(repo, branch=branch, repo_type="dataset")


def test_a_repush_of_a_rebuilt_folder_deletes_what_it_no_longer_holds(hub, fake):
    push_hub(hub, REPO)
    # a rebuild that writes the split in two shards where there was one
    old = hub / "weights" / "train-00000-of-00001.parquet"
    data = old.read_bytes()
    old.unlink()
    (hub / "weights" / "train-00000-of-00002.parquet").write_bytes(data)
    (hub / "weights" / "train-00001-of-00002.parquet").write_bytes(data)
    assert push_hub(hub, REPO).changed
    deleted = [op.path_in_repo for op in fake.commits[-1]["operations"] if isinstance(op, CommitOperationDelete)]
    assert deleted == ["weights/train-00000-of-00001.parquet"]  # .gitattributes stays
    assert set(fake.repos[("dataset", REPO)]["branches"]["main"][1]) == set(_hub_files(hub))


def test_push_warns_when_the_card_loads_another_repository(tiny_zoo, hub, fake, tmp_path, capsys):
    assert main(["push", str(hub), "--repo-id", REPO]) == 0  # built for modelzoos/tiny-digits
    assert f"--repo-id {REPO}` and push again" in capsys.readouterr().err
    _, root = tiny_zoo
    zoo = tmp_path / "again"
    shutil.copytree(root, zoo, ignore=shutil.ignore_patterns("hub"))
    assert main(["build", str(zoo), "--repo-id", REPO]) == 0
    assert f'load_dataset("{REPO}")' in (zoo / "hub" / "README.md").read_text()
    capsys.readouterr()
    assert main(["push", str(zoo / "hub"), "--repo-id", REPO]) == 0
    assert "warning" not in capsys.readouterr().err
