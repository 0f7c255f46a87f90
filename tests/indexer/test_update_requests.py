"""index-update without Redis: image paths stored the same however the catalog is named, requests that would
change nothing or contradict themselves, an index that does not exist; `status` of a job not found here, and
(against the real Redis) of an in-process job asked of Redis."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fashion_cli.main import main
from fashion_core.settings import load_settings
from fashion_core.stores.backends import open_index, open_store
from indexer.diff import diff_catalog
from indexer.distributors import start_job


@pytest.fixture
def env(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASHION_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("FASHION_INDEX_BACKEND", "faiss")
    monkeypatch.setenv("FASHION_DEVICE", "cpu")


def _images(name: str) -> set[str]:
    index = open_index(load_settings(), name)
    return {payload["image"] for payload, _ in index.retrieve(sorted(index.all_ids())).values()}


def test_image_paths_are_absolute_whoever_writes_and_however_the_catalog_is_named(env, tiny_encoder, tmp_path,
                                                                                  synthetic_catalog, monkeypatch,
                                                                                  capsys):
    work = tmp_path / "work"
    catalog = shutil.copytree(synthetic_catalog, work / "catU")
    monkeypatch.chdir(work)
    assert main(["index", "catU", "--index-name", "byindex"]) == 0  # the CLI's own writer, a relative dir
    start_job(load_settings(), "catU", "byjob", encoder=tiny_encoder)  # the job pipeline, a relative dir
    for name in ("byindex", "byjob"):
        images = _images(name)
        assert images and all(Path(image).is_absolute() and Path(image).is_file() for image in images)
        assert all(image.startswith(str(catalog) + "/images/") for image in images)
        for spelling in ("catU", str(catalog), "./catU/../catU"):
            diff = diff_catalog(load_settings(), spelling, name)
            assert (diff.update, diff.delete) == ([], []), (name, spelling)  # (add: products whose image is broken)
    capsys.readouterr()
    assert main(["index-update", str(catalog), "--index", "byindex", "--dry-run"]) == 0
    assert ", 0 to update, 0 to delete" in capsys.readouterr().out.splitlines()[0]

    # a service started from another directory finds the images
    monkeypatch.chdir(tmp_path)
    assert all(Path(image).is_file() for image in _images("byjob"))


def test_an_index_stored_with_relative_image_paths_does_not_look_changed(env, tiny_encoder, tmp_path,
                                                                         synthetic_catalog, monkeypatch):
    """An index built before image paths were absolute holds them relative to its writer's directory: the same
    image, so no update (and no re-embedding of the whole catalog); a product really changed still is one."""
    work = tmp_path / "work"
    catalog = shutil.copytree(synthetic_catalog, work / "catU")
    start_job(load_settings(), catalog, "old", encoder=tiny_encoder)
    index = open_index(load_settings(), "old")
    rows = index.retrieve(sorted(index.all_ids()), with_vectors=True)
    ids = sorted(rows)
    payloads = [{**rows[i][0], "image": f"catU/images/{Path(rows[i][0]['image']).name}"} for i in ids]
    payloads[0]["productDisplayName"] = "Something Else Entirely"
    import numpy as np

    index.upsert(ids, np.stack([np.asarray(rows[i][1], np.float32) for i in ids]), payloads)
    index.flush()
    index.close()
    assert all(not Path(image).is_absolute() for image in _images("old"))
    for spelling in (catalog, tmp_path / "work" / "catU"):
        diff = diff_catalog(load_settings(), spelling, "old")
        assert (diff.update, diff.delete) == ([ids[0]], []) and not set(diff.add) & set(ids)


def test_index_update_refuses_pointless_or_contradictory_requests(env, tiny_encoder, synthetic_catalog, capsys):
    settings = load_settings()
    built = start_job(settings, synthetic_catalog, "products", encoder=tiny_encoder)
    indexed = sorted(open_index(settings, "products").all_ids())
    store = open_store(settings)
    jobs = settings.home / "jobs"
    capsys.readouterr()

    # an id the index does not hold: reported, not counted, no job and no new version
    assert main(["index-update", str(synthetic_catalog), "--delete", "123456789"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "0 to add, 0 to update, 0 to delete, 1 not in index 'products'"
    assert "123456789" in out and "nothing to do" in out
    assert store.serving_version("products") == built.version
    assert sorted({p.name.split(".")[0] for p in jobs.iterdir()}) == [built.job_id]
    # only the held ids of a mixed list count
    assert main(["index-update", str(synthetic_catalog), "--delete", f"123456789,{indexed[0]}", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "0 to add, 0 to update, 1 to delete, 1 not in index 'products'"

    # an id the index holds already is re-embedded: an update, not an add
    assert main(["index-update", str(synthetic_catalog), "--add", str(indexed[2]), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "0 to add, 1 to update, 0 to delete"
    # a flag given without ids is an error, not a quiet full diff
    for flag in ("--add", "--delete"):
        assert main(["index-update", str(synthetic_catalog), flag, "", "--dry-run"]) == 2
        assert f"{flag}: no product ids given" in capsys.readouterr().err

    # the same id to add and to delete: an error, nothing started
    assert main(["index-update", str(synthetic_catalog), "--add", str(indexed[1]), "--delete", str(indexed[1])]) == 2
    err = capsys.readouterr().err
    assert f"--add and --delete both name {indexed[1]}" in err

    # an index that does not exist (a typo): an error naming index/reindex, for a diff and for ids
    for extra in ([], ["--add", str(indexed[1])], ["--delete", str(indexed[1])]):
        assert main(["index-update", str(synthetic_catalog), "--index", "nosuch", *extra]) == 2
        captured = capsys.readouterr()
        assert "to add" not in captured.out
        assert "index 'nosuch' does not exist" in captured.err and "fashion-search reindex" in captured.err
    assert not store.list_versions("nosuch") and store.serving_names() == ["products"]
    assert sorted({p.name.split(".")[0] for p in jobs.iterdir()}) == [built.job_id]


def test_status_of_a_job_not_found_here_says_to_pass_redis_url(env, capsys, monkeypatch):
    for command in (["status", "abc123def456"], ["resume", "abc123def456"], ["cancel", "abc123def456"]):
        assert main(command) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "no indexing job 'abc123def456'" in err and "pass --redis-url" in err, command


def test_status_with_redis_of_a_job_run_in_process_says_to_drop_redis_url(env, redis_url, capsys, monkeypatch):
    """The other direction: --redis-url (or FASHION_REDIS_URL) given, the job not in Redis but one of this
    machine's in-process jobs: the error says so and how to drop the Redis URL (it said only 'no indexing job')."""
    from indexer.jobs import FileJobStore, JobSpec

    jobs = load_settings().home / "jobs"  # where in-process jobs are kept
    spec = JobSpec(job_id=JobSpec.new_id(), kind="reindex", catalog_dir="catalog", index="products",
                   version="products-v1", backend="faiss", staging_dir="staging", chunks_total=1, items_total=1)
    FileJobStore(jobs).create(spec, [], [[1]])
    assert main(["status", spec.job_id]) == 0  # without Redis it is found
    capsys.readouterr()
    for command in ("status", "resume", "cancel"):
        assert main([command, spec.job_id, "--redis-url", redis_url]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"no indexing job {spec.job_id!r}" in err, command
        assert "is not in Redis at 127.0.0.1:6379/" in err and "is one of this machine's in-process jobs" in err
        assert str(jobs) in err and "drop --redis-url to reach it" in err, command
    assert FileJobStore(jobs).get(spec.job_id).state == "pending"  # left as it was

    monkeypatch.setenv("FASHION_REDIS_URL", redis_url)  # the URL from the environment: unset it, no flag to drop
    assert main(["status", spec.job_id]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "unset FASHION_REDIS_URL to reach it" in err and "drop --redis-url" not in err

    # a job in neither place: the plain not-found, no in-process hint (nor one for a path posing as an id)
    for job_id in ("abc123def456", f"../jobs/{spec.job_id}"):
        assert main(["status", job_id]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "no indexing job" in err and "in-process" not in err and "pass --redis-url" not in err, job_id


def test_an_update_keeps_the_serving_versions_ann_type(env, tmp_path, synthetic_catalog, monkeypatch) -> None:
    """A copy-on-write update builds its version with the serving one's ANN type and quantization unless the
    command sets them: an HNSW index came back flat (the CLI's default) after `index-update --add`."""
    monkeypatch.chdir(tmp_path)
    assert main(["reindex", str(synthetic_catalog), "--index", "p2", "--faiss-type", "hnsw", "--wait"]) == 0
    store = open_store(load_settings())
    first = store.serving_version("p2")
    some = sorted(open_index(load_settings(), "p2").all_ids())[:2]
    assert main(["index-update", str(synthetic_catalog), "--index", "p2", "--delete", str(some[0]), "--wait"]) == 0
    second = store.serving_version("p2")
    assert second != first
    assert open_store(load_settings()).open("p2").meta.extra["index_type"] == "hnsw"
    # set on the command, it is honoured
    assert main(["index-update", str(synthetic_catalog), "--index", "p2", "--delete", str(some[1]),
                 "--faiss-type", "flat", "--wait"]) == 0
    assert open_store(load_settings()).open("p2").meta.extra["index_type"] == "flat"


def test_an_in_process_resume_continues_the_jobs_own_index_from_anywhere(env, tmp_path, synthetic_catalog,
                                                                         monkeypatch, capsys) -> None:
    """`resume` without Redis runs the job in this process, so it uses the job's index location, not the
    working directory's default; a job a runner refused wrote nothing and stays resumable."""
    from indexer.distributors import open_store as open_jobs
    from indexer.jobs import JobSpec
    from indexer.pipeline import JobRefusedError, _refuse, check_job, plan_job, runner_settings

    monkeypatch.setenv("FASHION_INDEX_DIR", ".fashion-search/index")  # the default: under the working directory
    home = tmp_path / "a"
    home.mkdir()
    monkeypatch.chdir(home)
    settings = load_settings()

    jobs = open_jobs(settings)
    spec, _ = plan_job(settings, jobs, synthetic_catalog, "products")
    assert isinstance(spec, JobSpec) and spec.index_dir == str((home / ".fashion-search/index").resolve())
    other = tmp_path / "b"
    other.mkdir()
    monkeypatch.chdir(other)  # another directory: its default index dir is another one
    with pytest.raises(JobRefusedError) as refused:
        check_job(spec, load_settings())
    assert "resume" in str(refused.value) and "--index-dir" in str(refused.value)
    jobs.set_state(spec.job_id, "running")
    _refuse(jobs, spec, refused.value)
    assert main(["resume", spec.job_id]) == 0  # in-process: the job's own index, from this directory
    assert jobs.get(spec.job_id).state == "succeeded"
    assert runner_settings(load_settings(), spec).index_dir == home / ".fashion-search/index"
    assert open_index(runner_settings(load_settings(), spec), "products").count() > 0
    assert not (other / ".fashion-search/index/products").exists()
