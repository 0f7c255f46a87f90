"""The CUDA paths: the fp16 encoder, the encoder service on a GPU, and mixed-precision fine-tuning.

Skipped where no CUDA device is present (CI has none); `scripts/gpu-check.sh` runs them on a GPU machine.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fashion_core.catalog.reader import read_catalog
from fashion_core.model.encoder import ClipEncoder
from fashion_core.settings import Settings
from training.data import split_products
from training.metrics import mrr, recall_at_k
from training.trainer import train

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TEXTS = [f"a {c} {t} for {g}" for c in ("red", "blue", "green", "black") for t in ("dress", "watch")
         for g in ("men", "women")]


def _images(catalog: Path, n: int = 16) -> list[bytes]:
    return [p.read_bytes() for p in sorted((catalog / "images").glob("*.jpg"))[:n]]


@pytest.fixture(scope="module")
def cuda_encoder(tiny_model_dir: Path) -> ClipEncoder:
    return ClipEncoder.from_pretrained(tiny_model_dir, device="cuda")


def test_cuda_encoder_runs_fp16_and_matches_the_cpu_encoder(cuda_encoder, tiny_encoder, synthetic_catalog) -> None:
    assert cuda_encoder.info.device == "cuda" and cuda_encoder.info.version == tiny_encoder.info.version
    assert next(cuda_encoder.model.parameters()).dtype == torch.float16
    images = _images(synthetic_catalog)
    for gpu, cpu in ((cuda_encoder.encode_texts(TEXTS), tiny_encoder.encode_texts(TEXTS)),
                     (cuda_encoder.encode_images(images), tiny_encoder.encode_images(images))):
        assert gpu.dtype == np.float32 and gpu.shape == cpu.shape
        np.testing.assert_allclose(np.linalg.norm(gpu, axis=1), 1.0, atol=1e-3)
        assert float((gpu * cpu).sum(axis=1).min()) > 0.995  # fp16 costs a little precision, no more
    sim_gpu = cuda_encoder.encode_texts(TEXTS) @ cuda_encoder.encode_images(images).T
    sim_cpu = tiny_encoder.encode_texts(TEXTS) @ tiny_encoder.encode_images(images).T
    assert float(np.abs(sim_gpu - sim_cpu).max()) < 0.01


def test_encoder_service_on_cuda_serves_concurrent_callers(tiny_model_dir, cuda_encoder, synthetic_catalog,
                                                           tmp_path) -> None:
    from services.encoder_client import EncoderClient
    from services.encoder_service import start_encoder_server

    settings = Settings(model=str(tiny_model_dir), device="cuda", encoder_max_batch=16, encoder_max_wait_ms=20.0,
                        home=tmp_path / "home")
    server, servicer = start_encoder_server(settings)  # loads the model itself, on the GPU
    client = EncoderClient(server.address)
    try:
        assert client.info.device == "cuda"
        images = _images(synthetic_catalog)
        want_texts, want_images = cuda_encoder.encode_texts(TEXTS), cuda_encoder.encode_images(images)

        def call(i: int) -> tuple[int, np.ndarray, np.ndarray]:
            return i, client.encode_texts([TEXTS[i]]), client.encode_images([images[i]])

        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(call, range(16)))
        for i, text_vec, image_vec in results:  # batched with other callers' items, still each caller's own
            assert float(text_vec[0] @ want_texts[i]) > 0.999
            assert float(image_vec[0] @ want_images[i]) > 0.999
    finally:
        client.close()
        server.stop(0)
        servicer.close()


def test_mixed_precision_fine_tune_on_cuda_learns(tiny_model_dir, tmp_path) -> None:
    from tests.training.test_learning import SPLIT, fine_tune_config, t2i_ranks
    from training.synthetic_catalog import generate_catalog

    products = read_catalog(generate_catalog(tmp_path / "catalog", n=420, seed=3)).products
    result = train(fine_tune_config(tiny_model_dir, tmp_path / "ckpt"), products)  # device "auto": the GPU
    hyper = result.card["hyperparameters"]
    assert hyper["amp"] is True and hyper["device"] == "cuda"
    assert all(np.isfinite(row["loss"]) for row in result.history[1:])  # GradScaler kept fp16 from overflowing
    # AMP keeps fp32 master weights: the checkpoint is float32 and loads on a CPU-only machine
    weights = load_file(result.out_dir / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}
    test = split_products(products, SPLIT)["test"]
    before, after = t2i_ranks(tiny_model_dir, test), t2i_ranks(result.out_dir, test)
    n = len(test)
    assert recall_at_k(after, 1) >= 5 / n and recall_at_k(after, 1) >= recall_at_k(before, 1) + 0.04
    assert mrr(after) >= mrr(before) + 0.08
