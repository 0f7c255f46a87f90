"""ClipPixels (torch) and PixelLayout (numpy, for the ONNX runtime) give the pixel values CLIPImageProcessor
gives, bit for bit, for any image shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPImageProcessor

from fashion_core.model.pixels import PixelLayout
from fashion_core.model.preprocess import ClipPixels

SHAPES = [(224, 224), (300, 240), (240, 300), (500, 333), (225, 224), (10, 7), (7, 640), (1, 1)]


def _images(shapes, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in shapes]


@pytest.mark.parametrize("edge,crop", [(224, (224, 224)), (32, (32, 32)), (256, (224, 200)),
                                       (60, (80, 80)), (16, (32, 20))])  # crops larger than the image pad it
def test_pixels_equal_the_processors(edge: int, crop: tuple[int, int]) -> None:
    processor = CLIPImageProcessor(size={"shortest_edge": edge}, crop_size={"height": crop[0], "width": crop[1]})
    pixels = ClipPixels(processor)
    assert pixels.supported
    images = _images(SHAPES)
    want = processor(images, return_tensors="pt")["pixel_values"]
    got = pixels(images)
    assert got.shape == want.shape == (len(SHAPES), 3, *crop) and got.dtype == torch.float32
    assert torch.equal(got, want)  # bit for bit: a model trained on either input is the same model
    layout = PixelLayout.from_config(processor)
    in_numpy = layout(images)
    assert in_numpy.dtype == np.float32 and np.array_equal(in_numpy, want.numpy())
    # from the saved JSON config too (what an ONNX export carries), and from the layout's own config
    assert PixelLayout.from_config(processor.to_dict()) == layout == PixelLayout.from_config(layout.config())


def test_other_rescale_factors_stay_bit_exact() -> None:
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                   rescale_factor=1 / 127.5, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    images = _images(SHAPES[:4])
    want = processor(images, return_tensors="pt")["pixel_values"]
    assert torch.equal(ClipPixels(processor)(images), want)
    layout = PixelLayout.from_config(processor)
    assert layout.divisor is None  # looked up, not divided
    assert np.array_equal(layout(images), want.numpy())


def test_the_real_catalogs_portraits_are_kept_whole_between_bars() -> None:
    processor = CLIPImageProcessor(size={"shortest_edge": 60}, crop_size={"height": 80, "width": 80})
    photo = Image.new("RGB", (60, 80), (255, 255, 255))  # a 60x80 studio shot on white
    raw = (ClipPixels(processor)([photo]) * torch.tensor(processor.image_std).view(1, 3, 1, 1)
           + torch.tensor(processor.image_mean).view(1, 3, 1, 1))[0]
    assert raw.shape == (3, 80, 80)
    assert torch.allclose(raw[:, :, 10:70], torch.ones(3, 80, 60), atol=1e-5)  # every pixel of the photo kept
    assert torch.allclose(raw[:, :, :10], torch.zeros(3, 80, 10), atol=1e-5)  # 10 px bars left and right
    assert torch.allclose(raw[:, :, 70:], torch.zeros(3, 80, 10), atol=1e-5)


def test_other_layouts_fall_back_to_the_processor() -> None:
    processor = CLIPImageProcessor(size={"height": 32, "width": 32}, do_center_crop=False)  # a squashing resize
    pixels = ClipPixels(processor)
    assert not pixels.supported
    assert PixelLayout.from_config(processor) is None and PixelLayout.from_config(processor.to_dict()) is None
    images = _images([(20, 12), (9, 30)])
    torch.testing.assert_close(pixels(images), processor(images, return_tensors="pt")["pixel_values"])


def test_dtype_and_empty_batches() -> None:
    pixels = ClipPixels(CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}))
    assert pixels(_images([(40, 50)]), dtype=torch.float16).dtype == torch.float16
    assert pixels([]).shape == (0, 3, 32, 32)
    assert pixels.layout([]).shape == (0, 3, 32, 32) and pixels.layout([]).dtype == np.float32


def test_encoder_vectors_are_those_of_the_processor_path(tiny_encoder, synthetic_catalog) -> None:
    paths = sorted((synthetic_catalog / "images").glob("*.jpg"))[:8]
    images = [Image.open(p).convert("RGB") for p in paths]
    with torch.inference_mode():
        ref = tiny_encoder.model.get_image_features(
            pixel_values=tiny_encoder.processor.image_processor(images, return_tensors="pt")["pixel_values"])
    ref = torch.nn.functional.normalize(ref, dim=-1).numpy()
    np.testing.assert_allclose(tiny_encoder.encode_images(images), ref, atol=1e-5)
