"""Jobs without Redis: the same chunk/finalize code run in this process (the embedded default)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from fashion_cli.commands_indexer import describe_items
from fashion_cli.main import main
from fashion_core.catalog.reader import read_catalog
from fashion_core.settings import Settings, load_settings
from fashion_core.stores.backends import open_index, open_store
from indexer.diff import diff_catalog
from indexer.distributors import get_job, start_job
from tests.indexer.helpers import edit_catalog, loadable_ids


def _settings(model: Path, **overrides: object) -> Settings:
    return load_settings(model=str(model), device="cpu", **overrides)


def test_reindex_in_process_exact_count_report_and_version_switch(tiny_model_dir, tiny_encoder,
                                                                   synthetic_catalog):
    settings = _settings(tiny_model_dir, index_backend="faiss", index_keep_versions=2)
    expected = loadable_ids(synthetic_catalog)

    built = []
    for _ in range(3):
        spec = start_job(settings, synthetic_catalog, "shop", chunk_size=32, encoder=tiny_encoder)
        status = get_job(settings, spec.job_id)
        assert status.state == "succeeded", status.error
        built.append(spec.version)
        index = open_index(settings, "shop")
        assert index.dir.name == spec.version  # the name resolves to the version just built
        assert index.all_ids() == expected and len(index.ids) == len(expected)
        assert index._lexicon is not None  # the version's lexical index was saved with it, not rebuilt on open
        assert "Puma" in index.search_lexical("puma", 1)[0].payload["productDisplayName"]

    assert status.index_count == len(expected) == status.items_indexed
    reasons = {f.product_id: f.reason for f in status.failures}
    assert any(r.startswith("unreadable image") for r in reasons.values())  # the corrupt JPEG
    # every failure names its styles.csv line, the chunks' (unreadable image) as well as the reader's
    rows = {p.id: p.line for p in read_catalog(synthetic_catalog).products}
    assert all(f.line >= 2 for f in status.failures)
    assert all(f.line == rows[int(f.product_id)] for f in status.failures if f.reason.startswith("unreadable"))
    assert any(r.startswith("missing image") for r in reasons.values())
    # Only the newest two versions are kept; the staging shards are gone.
    assert open_store(settings).list_versions("shop") == built[1:]
    assert not any((settings.index_dir / "staging").iterdir())


def test_incremental_add_update_delete_reflected_in_search(tiny_model_dir, tiny_encoder, synthetic_catalog,
                                                          tmp_path):
    settings = _settings(tiny_model_dir, index_backend="faiss")
    catalog = Path(shutil.copytree(synthetic_catalog, tmp_path / "catalog"))
    start_job(settings, catalog, "shop", chunk_size=50, encoder=tiny_encoder)
    before = open_index(settings, "shop")
    ids = sorted(before.all_ids())
    dropped, renamed, source = ids[0], ids[1], ids[2]
    new_id = max(ids) + 1000
    # styles.csv edited in place, as a catalog owner would.
    changed = edit_catalog(catalog, catalog, drop={dropped},
                           rename={renamed: "Zebra Striped Festival Poncho"}, copies={new_id: source})

    diff = diff_catalog(settings, changed, "shop")
    # Products whose image never decoded are not indexed, so every diff offers them again (and reports them).
    broken = {p.id for p in read_catalog(changed).products} - loadable_ids(changed)
    assert broken and (diff.add, diff.update, diff.delete) == (sorted({new_id} | broken), [renamed], [dropped])
    spec = start_job(settings, changed, "shop", kind="update", upsert_ids=diff.upserts, delete_ids=diff.delete,
                     encoder=tiny_encoder)
    assert get_job(settings, spec.job_id).state == "succeeded"

    after = open_index(settings, "shop")
    assert after.all_ids() == (before.all_ids() - {dropped}) | {new_id}
    assert after.retrieve([renamed])[renamed][0]["productDisplayName"] == "Zebra Striped Festival Poncho"
    # the update's lexical index follows: the new name is found by its words, the dropped product by none
    assert after._lexicon is not None and [h.id for h in after.search_lexical("zebra poncho", 3)][:1] == [renamed]
    assert before.search_lexical("zebra poncho", 3) == []
    assert dropped not in {h.id for h in after.search_lexical(after.retrieve([source])[source][0][
        "productDisplayName"], len(after.ids))}
    # The copy has the same image as its source, so searching by that vector finds both at the top.
    vector = after.retrieve([source], with_vectors=True)[source][1]
    assert {h.id for h in after.search(vector, k=2)} == {source, new_id}
    assert dropped not in {h.id for h in after.search(vector, k=len(after.ids))}
    # The readers' old version is untouched (copy-on-write), and a second diff finds nothing to do.
    assert before.count() == len(ids)
    again = diff_catalog(settings, changed, "shop")
    assert (again.add, again.update, again.delete) == (sorted(broken), [], [])


def test_failed_job_leaves_serving_index_untouched(tiny_model_dir, tiny_encoder, synthetic_catalog):
    settings = _settings(tiny_model_dir, index_backend="faiss")
    good = start_job(settings, synthetic_catalog, "shop", encoder=tiny_encoder)
    # An encoder service nobody listens on: every chunk fails (no retries here), so the job fails.
    broken = settings.model_copy(update={"encoder_address": "127.0.0.1:1", "indexer_max_retries": 0,
                                         "rpc_timeout_s": 2.0})
    spec = start_job(broken, synthetic_catalog, "shop", chunk_size=100)
    status = get_job(broken, spec.job_id)
    assert status.state == "failed" and status.chunks_failed == spec.chunks_total
    assert all(f.reason.startswith("chunk failed") for f in status.failures if f.line == 0)
    assert open_store(settings).serving_version("shop") == good.version
    assert open_store(settings).list_versions("shop") == [good.version]  # the half-built one was dropped


def test_qdrant_embedded_reindex_switches_alias_and_updates_in_place(tiny_model_dir, tiny_encoder,
                                                                      synthetic_catalog):
    settings = _settings(tiny_model_dir, index_backend="qdrant")
    expected = loadable_ids(synthetic_catalog)
    first = start_job(settings, synthetic_catalog, "shop", chunk_size=64, encoder=tiny_encoder)
    second = start_job(settings, synthetic_catalog, "shop", chunk_size=64, encoder=tiny_encoder)
    assert get_job(settings, second.job_id).state == "succeeded"
    store = open_store(settings)
    try:
        assert store.serving_version("shop") == second.version
        assert store.list_versions("shop") == [first.version, second.version]
        assert store.open("shop").all_ids() == expected
        victim = min(expected)
    finally:
        store.close()
    update = start_job(settings, synthetic_catalog, "shop", kind="update", upsert_ids=[], delete_ids=[victim])
    assert get_job(settings, update.job_id).state == "succeeded"
    index = open_index(settings, "shop")
    try:
        assert index.all_ids() == expected - {victim}
        vector = np.ones(index.meta.dim, dtype=np.float32)
        assert len(index.search(vector, k=5)) == 5
    finally:
        index.close()


def test_cli_reindex_and_status_in_process(tiny_model_dir, synthetic_catalog, monkeypatch, capsys):
    monkeypatch.setenv("FASHION_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("FASHION_INDEX_BACKEND", "faiss")
    assert main(["reindex", str(synthetic_catalog), "--index", "cli", "--chunk-size", "40"]) == 0
    out = capsys.readouterr().out
    job_id = out.split("job ", 1)[1].split(":", 1)[0].strip()
    assert main(["status", job_id, "--json"]) == 0
    out = capsys.readouterr().out
    assert '"state": "succeeded"' in out
    # the counts add up: every data row of styles.csv is indexed or in the failure report
    data = json.loads(out[out.index("{"):])
    rows = [line for line in (synthetic_catalog / "styles.csv").read_bytes().split(b"\n")[1:] if line.strip()]
    assert data["items_indexed"] + data["items_skipped"] == data["items_total"] == len(rows)
    assert data["spec"]["items_rejected"] == len(read_catalog(synthetic_catalog).skipped) > 0
    status = get_job(load_settings(), job_id)
    assert describe_items(status) == (f"{status.items_indexed} indexed, {status.items_skipped} skipped of "
                                      f"{len(rows)} ({status.spec.items_total} planned, "
                                      f"{status.spec.items_rejected} rejected while planning)")
    assert open_index(load_settings(index_backend="faiss"), "cli").count() == len(loadable_ids(synthetic_catalog))
    assert main(["status", "nope"]) == 2  # unknown job: one-line error


class _OtherModel:
    """The same vectors under another model version: what a job sees after the served model changed."""

    def __init__(self, encoder) -> None:
        from dataclasses import replace

        self._encoder = encoder
        self.info = replace(encoder.info, version="another-model")

    def encode_texts(self, texts):
        return self._encoder.encode_texts(texts)

    def encode_images(self, images):
        return self._encoder.encode_images(images)


def test_an_update_by_another_model_fails_and_leaves_the_serving_index(tiny_model_dir, tiny_encoder,
                                                                      synthetic_catalog):
    settings = _settings(tiny_model_dir, index_backend="faiss")
    first = start_job(settings, synthetic_catalog, "shop", chunk_size=50, encoder=tiny_encoder)
    serving = open_store(settings).serving_version("shop")
    assert serving == first.version
    spec = start_job(settings, synthetic_catalog, "shop", kind="update", chunk_size=50,
                     upsert_ids=sorted(loadable_ids(synthetic_catalog))[:5], encoder=_OtherModel(tiny_encoder))
    status = get_job(settings, spec.job_id)
    assert status.state == "failed" and "run a full reindex" in status.error
    assert open_store(settings).serving_version("shop") == serving


def test_index_update_refuses_ids_not_in_the_catalog(tiny_model_dir, tiny_encoder, synthetic_catalog, monkeypatch,
                                                     capsys):
    """An id given to --add that is not a product of the catalog (no row, or a row the reader skipped) is
    reported as such and never counted as to add; dry run or not, nothing is started."""
    monkeypatch.setenv("FASHION_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("FASHION_INDEX_BACKEND", "faiss")
    built = start_job(load_settings(), synthetic_catalog, "products", encoder=tiny_encoder)  # what is updated
    catalog = read_catalog(synthetic_catalog)
    skipped = catalog.skipped[0]
    good = catalog.products[0].id
    for dry_run in (["--dry-run"], []):
        assert main(["index-update", str(synthetic_catalog), "--add", f"1,{skipped.product_id},{good}",
                     *dry_run]) == 2
        captured = capsys.readouterr()
        assert captured.out.splitlines()[0] == "0 to add, 1 to update, 0 to delete, 2 not in the catalog"
        assert "1: not in the catalog: no row with this id in styles.csv" in captured.out
        assert f"{skipped.product_id} (line {skipped.line}): not in the catalog: its row was skipped" in captured.out
        assert "not in the catalog (1, " in captured.err and "nothing was started" in captured.err
    assert {p.name.split(".")[0] for p in (load_settings().home / "jobs").iterdir()} == {built.job_id}
    assert main(["index-update", str(synthetic_catalog), "--add", str(good), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "0 to add, 1 to update, 0 to delete"
    # the job API keeps its report: such ids are rejected while planning, and the counts still add up
    spec = start_job(load_settings(), synthetic_catalog, "shop", kind="update", upsert_ids=[good, 1],
                     encoder=tiny_encoder)
    status = get_job(load_settings(), spec.job_id)
    assert (spec.items_total, spec.items_rejected) == (1, 1)
    assert [(f.product_id, f.reason) for f in status.failures] == [
        ("1", "not in the catalog: no row with this id in styles.csv")]
    assert status.items_indexed + status.items_skipped == status.items_total == 2
