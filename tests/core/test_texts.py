"""A text query that shows nothing is empty, whatever invisible characters it is made of."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fashion_core.errors import InvalidInputError
from fashion_core.model.base import check_texts, is_blank
from fashion_core.zeroshot import classify

INVISIBLE = ["", "   ", "\u200b", "\u200b\u200b\u200b", "\ufeff", "\u2060\u200d\u200c", " \u00a0\u3000\t\n",
             "\u3164", "\u115f\u1160", "\uffa0", "\u2800", "\u0301\u0308", "\u202e\u202a", "\u180e", "\x00\x07"]


@pytest.mark.parametrize("text", INVISIBLE)
def test_invisible_only_texts_are_empty(text: str, tiny_encoder) -> None:
    assert is_blank(text)
    with pytest.raises(InvalidInputError, match="empty"):
        check_texts([text])
    with pytest.raises(InvalidInputError, match="empty"):
        tiny_encoder.encode_texts(["red dress", text])


@pytest.mark.parametrize("text", ["red dress", "red\u200bdress", "\u200bred", "红色连衣裙", "👗", "é", "x\u0301"])
def test_visible_texts_pass(text: str) -> None:
    assert not is_blank(text)
    assert check_texts([text]) == [text.strip()]


def test_zero_shot_labels_that_show_nothing_are_refused(tiny_encoder) -> None:
    image = np.full((32, 32, 3), 200, np.uint8)
    with pytest.raises(InvalidInputError, match="non-empty"):
        classify(tiny_encoder, Image.fromarray(image), ["sandal", "\u200b\u200b"])
    assert len(classify(tiny_encoder, Image.fromarray(image), ["sandal", "heels"])) == 2
