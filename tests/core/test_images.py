"""The one image decoder reads images the way a viewer shows them, and bounds the work any accepted image costs."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from fashion_core.errors import InvalidInputError
from fashion_core.images import MAX_ASPECT_RATIO, SourceImage, decode_image, read_image, to_rgb

# Pixels stored for each EXIF orientation so that a viewer shows the upright image (the inverse of the
# transposition the orientation asks for).
STORED_FOR = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def _grey() -> np.ndarray:
    """An asymmetric 8-bit picture spanning 0..255."""
    y, x = np.mgrid[0:48, 0:64]
    grey = (x * 4 + y * 2) % 256
    grey[5:15, 40:60] = 255
    grey[30:40, 3:9] = 0
    return grey.astype(np.uint8)


def _upright() -> Image.Image:
    grey = _grey()
    return Image.fromarray(np.stack([grey, 255 - grey, np.roll(grey, 7, axis=1)], axis=-1))


def _pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


@pytest.mark.parametrize(("array", "fmt", "mode"), [
    (_grey().astype(np.uint16) * 257, "PNG", "I;16"),  # 16-bit greyscale PNG
    ((_grey().astype(np.uint16) * 257).astype(">u2"), "TIFF", "I;16B"),  # big-endian 16-bit TIFF
    (_grey().astype(np.int32) * 257, "TIFF", "I"),  # 16-bit data in 32-bit integers
    (_grey().astype(np.int32) * (1 << 20) - 12345, "TIFF", "I"),  # full 32-bit range: scaled from min..max
    (_grey().astype(np.float32) / 255, "TIFF", "F"),  # float in [0, 1]
    (_grey().astype(np.float32) * 40 - 900, "TIFF", "F"),  # float in another range: scaled from min..max
])
def test_wide_integer_and_float_pixels_are_scaled_to_8_bits_not_clamped(array, fmt, mode) -> None:
    data = _encode(Image.fromarray(array), fmt)
    assert Image.open(io.BytesIO(data)).mode == mode
    want = _pixels(Image.fromarray(_grey()).convert("RGB"))
    got = _pixels(decode_image(data))
    assert np.abs(got - want).max() <= 1  # rounding of the float ranges; a clamp would give 255 almost everywhere
    assert (got == want).mean() > 0.95


@pytest.mark.parametrize("orientation", sorted(STORED_FOR))
def test_exif_orientation_is_applied(orientation: int) -> None:
    upright = _upright()
    stored = upright.transpose(STORED_FOR[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = decode_image(_encode(stored, "PNG", exif=exif.tobytes()))
    assert decoded.size == upright.size
    np.testing.assert_array_equal(_pixels(decoded), _pixels(upright))


def test_phone_jpeg_stored_sideways_is_read_upright() -> None:
    upright = _upright().resize((320, 240))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display": how phones store portrait shots
    data = _encode(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif.tobytes())
    decoded = decode_image(data)
    assert decoded.size == (320, 240)
    assert np.abs(_pixels(decoded) - _pixels(upright)).mean() < 4  # JPEG loss only


def test_transparency_is_composited_on_white() -> None:
    # RGBA / LA: left half opaque, right half transparent (black under it), a half-transparent stripe
    rgba = np.zeros((10, 20, 4), np.uint8)
    rgba[:, :10] = (200, 20, 20, 255)
    rgba[:, 10:] = (0, 0, 0, 0)
    rgba[:2, :] = (0, 0, 200, 128)
    got = _pixels(decode_image(_encode(Image.fromarray(rgba), "PNG")))
    assert (got[5, 2] == (200, 20, 20)).all() and (got[5, 15] == (255, 255, 255)).all()
    assert np.abs(got[0, 5] - (127, 127, 227)).max() <= 1  # 50% blue over white
    la = Image.fromarray(rgba[..., [0, 3]], mode="LA")
    got = _pixels(decode_image(_encode(la, "PNG")))
    assert (got[5, 2] == 200).all() and (got[5, 15] == 255).all()

    # palette with a transparent index (PNG tRNS and GIF), the transparent colour black
    pal = Image.new("P", (20, 10), 0)
    pal.putpalette([0, 0, 0, 30, 160, 60] + [0] * 762)
    pal.paste(1, (0, 0, 10, 10))
    for fmt in ("PNG", "GIF"):
        got = _pixels(decode_image(_encode(pal, fmt, transparency=0)))
        assert (got[5, 2] == (30, 160, 60)).all() and (got[5, 15] == (255, 255, 255)).all(), fmt

    # RGB and greyscale PNGs with a tRNS colour
    rgb = Image.new("RGB", (20, 10), (0, 0, 0))
    rgb.paste((90, 90, 10), (0, 0, 10, 10))
    got = _pixels(decode_image(_encode(rgb, "PNG", transparency=(0, 0, 0))))
    assert (got[5, 2] == (90, 90, 10)).all() and (got[5, 15] == (255, 255, 255)).all()
    got = _pixels(decode_image(_encode(rgb.convert("L"), "PNG", transparency=0)))
    assert (got[5, 15] == (255, 255, 255)).all() and got[5, 2, 0] < 255


def test_other_modes_become_rgb() -> None:
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    got = _pixels(decode_image(_encode(cmyk, "JPEG", quality=95)))
    assert got[8, 8, 0] > 230 and got[8, 8, 1:].max() < 30
    bilevel = Image.new("1", (16, 16), 1)
    assert (_pixels(decode_image(_encode(bilevel, "PNG"))) == 255).all()
    lab = Image.new("LAB", (4, 4), (255, 128, 128))  # white
    assert _pixels(to_rgb(lab)).min() >= 250


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "PNG", "WEBP"])
def test_multi_frame_files_give_their_first_frame(fmt: str) -> None:
    first, second = Image.new("RGB", (16, 16), (200, 0, 0)), Image.new("RGB", (16, 16), (0, 0, 200))
    data = _encode(first, fmt, save_all=True, append_images=[second], **({"lossless": True} if fmt == "WEBP" else {}))
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    got = _pixels(decode_image(data))
    assert got[8, 8, 0] > 190 and got[8, 8, 2] < 10


def test_extreme_aspect_ratios_are_rejected_before_any_pixel_work() -> None:
    strip = _encode(Image.new("L", (2_000_000, 1), 128), "PNG")
    assert len(strip) < 20_000  # 2 Mpixel, far under the 40 Mpixel limit: only its shape is the problem
    start = time.perf_counter()
    with pytest.raises(InvalidInputError, match=r"2000000x1 pixels has an aspect ratio of 2000000:1, over the limit"):
        decode_image(strip)
    assert time.perf_counter() - start < 1.0
    with pytest.raises(InvalidInputError, match="aspect ratio"):
        decode_image(_encode(Image.new("RGB", (3, 3 * MAX_ASPECT_RATIO + 3)), "PNG"))
    with pytest.raises(InvalidInputError, match="aspect ratio"):
        to_rgb(Image.new("RGB", (50_000, 10)))  # in-memory images go through the same checks
    assert decode_image(_encode(Image.new("RGB", (2 * MAX_ASPECT_RATIO, 2)), "PNG")).size == (40, 2)


def test_encoder_bounds_preprocessing_for_any_input(tiny_encoder) -> None:
    """Every kind of image input to the encoder meets the same shape check: the preprocessing of an accepted
    image is bounded, an elongated one is a clear InvalidInputError (before: a shortest-edge resize to
    millions of pixels wide)."""
    wide = Image.new("RGB", (200_000, 2), (10, 200, 10))
    for image in (wide, _encode(wide, "PNG"), SourceImage(b"", wide)):
        start = time.perf_counter()
        with pytest.raises(InvalidInputError, match="aspect ratio"):
            tiny_encoder.encode_images([image])
        assert time.perf_counter() - start < 2.0
    # the same picture as bytes, as a PIL image in any mode and orientation, or decoded: the same vector
    upright = _upright()
    exif = Image.Exif()
    exif[0x0112] = 8
    sideways_16bit = upright.convert("L").transpose(STORED_FOR[8])
    sideways_16bit = Image.fromarray(np.asarray(sideways_16bit).astype(np.uint16) * 257)
    sideways_png = _encode(sideways_16bit, "PNG", exif=exif.tobytes())
    want = tiny_encoder.encode_images([upright.convert("L").convert("RGB")])[0]
    for given in (sideways_png, Image.open(io.BytesIO(sideways_png)), SourceImage(sideways_png,
                                                                                 decode_image(sideways_png))):
        np.testing.assert_allclose(tiny_encoder.encode_images([given])[0], want, atol=1e-6)


def test_read_image_keeps_the_file_bytes(tmp_path) -> None:
    path = tmp_path / "x.jpg"
    path.write_bytes(_encode(_upright(), "JPEG"))
    source = read_image(path)
    assert source.data == path.read_bytes() and source.image.mode == "RGB" and source.image.size == (64, 48)


def test_cli_refuses_an_elongated_image_in_one_line(tmp_path, tiny_model_dir, capsys) -> None:
    from fashion_cli.main import main

    strip = tmp_path / "strip.png"
    strip.write_bytes(_encode(Image.new("L", (2_000_000, 1), 128), "PNG"))
    assert main(["classify", str(strip), "--labels", "sandal,heels", "--model", str(tiny_model_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "aspect ratio of 2000000:1" in err and len(err.strip().splitlines()) == 1
