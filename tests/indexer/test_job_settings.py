"""A job carries what it was asked for, and a Celery worker configured otherwise never silently builds
something else: the index location and the model are checked (the job is refused, nothing written), the ANN
build settings are honoured."""

from __future__ import annotations

from pathlib import Path

import pytest

from fashion_cli.main import main
from fashion_core.settings import Settings, load_settings
from fashion_core.stores.backends import open_index, open_store
from indexer.distributors import get_job, start_job, wait_job

pytestmark = pytest.mark.redis


def _settings(redis_url: str, model: Path, **overrides: object) -> Settings:
    return load_settings(redis_url=redis_url, model=str(model), index_backend="faiss", device="cpu", **overrides)


def test_worker_honours_ann_type_and_refuses_another_index_dir_or_model(redis_url, workers, tiny_model_dir,
                                                                         tmp_path, synthetic_catalog, monkeypatch,
                                                                         capsys):
    workers.start("w1")  # FAISS under the test's FASHION_INDEX_DIR, the tiny model, flat (the default)
    mine = _settings(redis_url, tiny_model_dir)

    # honoured: the CLI's --faiss-type builds the new version
    hnsw = start_job(_settings(redis_url, tiny_model_dir, faiss_index_type="hnsw"), synthetic_catalog, "shop",
                     chunk_size=50)
    status = wait_job(mine, hnsw.job_id, timeout_s=180)
    assert status.state == "succeeded", status.error
    assert hnsw.build["faiss_index_type"] == "hnsw"
    index = open_index(mine, "shop")
    assert index.dir.name == hnsw.version and index.index_type == "hnsw"
    served = sorted(index.all_ids())

    # checked: another --index-dir is refused before anything is written, the workers' index untouched
    other_dir = tmp_path / "ix5"
    monkeypatch.chdir(tmp_path)
    code = main(["reindex", str(synthetic_catalog), "--index", "shop", "--redis-url", redis_url, "--wait",
                 "--index-dir", str(other_dir), "--model", str(tiny_model_dir), "--backend", "faiss"])
    out = capsys.readouterr().out
    assert code == 1 and "refused" in out and "writes to" in out  # the status table has the location's row
    refused = get_job(mine, out.split()[1].rstrip(":"))
    assert refused.state == "failed" and refused.chunks_complete == 0 and refused.spec.index_dir == str(other_dir)
    assert refused.spec.location == f"faiss under {other_dir}"
    workers_dir = Path(mine.index_dir).resolve()
    assert (f"refused: this worker writes to faiss under {workers_dir}, the job asked for faiss under {other_dir}"
            ) in refused.error
    assert f"start workers with FASHION_INDEX_DIR={other_dir}" in refused.error
    assert f"give the command the workers' (--index-dir {workers_dir})" in refused.error
    assert f"fashion-search resume {refused.spec.job_id}" in refused.error  # refused, it wrote nothing: resumable
    assert not (other_dir / "faiss").exists() and not any(other_dir.rglob("*.npz"))  # no shard, no index
    store = open_store(mine)
    assert store.serving_version("shop") == hnsw.version and sorted(open_index(mine, "shop").all_ids()) == served

    # checked: another model (other weights) is refused too
    other_model = tmp_path / "other-model"
    from training.architectures import build_tiny_clip

    build_tiny_clip(other_model, seed=1)
    spec = start_job(_settings(redis_url, other_model), synthetic_catalog, "shop", chunk_size=50)
    status = wait_job(mine, spec.job_id, timeout_s=180)
    assert status.state == "failed" and status.chunks_complete == 0
    assert f"the job asked for {other_model.resolve()} (version {spec.model_version})" in status.error
    assert f"FASHION_MODEL={other_model.resolve()}" in status.error
    assert open_store(mine).serving_version("shop") == hnsw.version
    assert not Path(spec.staging_dir).exists()
    assert get_job(mine, spec.job_id).index_count == -1
