"""Named training recipes, each trained once per machine and cached under its fingerprint.

A recipe is everything that decides a model's weights: the data, the architecture, the training config and
the code version. Its fingerprint (a short hash of all of that) names the cache folder
``$FASHION_HOME/models/<recipe>-<fingerprint>``, so a changed recipe trains anew and is never served stale,
while the demo, the test suite and the services share one copy. ``ensure_trained`` trains at most once per
fingerprint, under a file lock (two processes never train the same recipe at once), into a temporary folder
moved into place only when complete; ``<recipe>.json`` beside it names the newest trained copy for
``fashion_core.model.resolve``.

Two recipes exist:
- ``synthetic``: the offline bootstrap on drawn products (``training/bootstrap.py``), for machines without
  the real catalog;
- ``real``: a CLIP trained from scratch on the real Fashion Product Images catalog (``training/real.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from fashion_core.model.card import CARD_FILE
from fashion_core.model.onnx_encoder import EXPORT_DIR
from fashion_core.model.resolve import recipe_pointer
from fashion_core.settings import Settings

log = logging.getLogger(__name__)


class Recipe(Protocol):
    """What ``ensure_trained`` needs of a recipe."""

    name: str

    def fingerprint(self) -> str:
        """A short hash of everything that decides the weights (12 hex digits)."""
        ...

    def train(self, out: Path, progress: bool) -> Path:
        """Train into the empty folder ``out``; returns the checkpoint folder (``out`` or inside it)."""
        ...


def recipe_dir(settings: Settings, recipe: Recipe) -> Path:
    return settings.models_dir / f"{recipe.name}-{recipe.fingerprint()}"


def is_trained(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / CARD_FILE).is_file()


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_trained(recipe: Recipe, settings: Settings, force: bool = False, progress: bool = True,
                   serve: bool = True) -> Path:
    """The recipe's cached checkpoint folder, trained first when missing (or when ``force``). A folder trained
    here comes with its ONNX export in ``<folder>/onnx`` (:func:`export_onnx`). With ``serve`` (the default),
    ``<recipe>.json`` then names it, so ``fashion_core.model.resolve`` serves it; an experiment (a study variant,
    another number of epochs) passes ``serve=False`` and is cached without replacing the served model."""
    out = recipe_dir(settings, recipe)
    if is_trained(out) and not force:
        if serve:
            _point_to(settings, recipe, out)
        return out
    with _exclusive(settings.models_dir / f".{recipe.name}.lock"):
        if is_trained(out) and not force:  # another process trained it while this one waited
            if serve:
                _point_to(settings, recipe, out)
            return out
        started = time.perf_counter()
        log.info("training recipe %r into %s", recipe.name, out)
        with tempfile.TemporaryDirectory(prefix=f".{recipe.name}-", dir=settings.models_dir) as tmp:
            trained = recipe.train(Path(tmp) / "work", progress)
            export_onnx(trained)  # moved with the checkpoint: the cached model comes with it
            if out.exists():
                shutil.rmtree(out)
            shutil.move(str(trained), out)
        log.info("recipe %r trained in %.0f s", recipe.name, time.perf_counter() - started)
    if serve:
        _point_to(settings, recipe, out)
    return out


def export_onnx(checkpoint: Path) -> bool:
    """Give the checkpoint folder its ONNX export in ``<checkpoint>/onnx`` (:mod:`fashion_core.model.onnx_export`)
    unless it has a current one; True when it has one afterwards. Best effort: a model that does not export is
    served by torch, so a failure is logged, not raised. ``ensure_trained`` calls it on every folder it trains,
    ``fashion-search prepare-models`` on folders cached before exports existed."""
    from fashion_core.model.base import weights_version
    from fashion_core.model.onnx_encoder import OnnxExport

    try:
        export = OnnxExport.read(checkpoint / EXPORT_DIR)
        if export is not None and export.version == weights_version(checkpoint):
            return True
        from fashion_core.model.onnx_export import export_onnx as export_checkpoint

        started = time.perf_counter()
        export_checkpoint(checkpoint, out_dir=checkpoint / EXPORT_DIR)
        log.info("exported %s to ONNX in %.0f s", checkpoint, time.perf_counter() - started)
        return True
    except Exception as exc:  # e.g. the onnx package missing, an unsupported layout: torch serves it
        log.warning("%s: no ONNX export (%s: %s); it is served by torch", checkpoint, type(exc).__name__, exc)
        return False


def _point_to(settings: Settings, recipe: Recipe, out: Path) -> None:
    pointer = recipe_pointer(settings, recipe.name)
    record = {"dir": out.name, "fingerprint": recipe.fingerprint()}
    if pointer.is_file() and json.loads(pointer.read_text() or "{}") == record:
        return
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(pointer)
