"""A CLIP-compatible BPE tokenizer trained offline on a text corpus.

Real checkpoints ship CLIP's own 49k-token vocabulary; hubs are unreachable here, so small models made by this
project get a vocabulary learned from fashion text instead. The files are CLIP's format (vocab.json +
merges.txt with ``</w>`` word ends) and load through the stock ``CLIPTokenizerFast``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import CLIPTokenizerFast

from training.synthetic_catalog import ARTICLES, BRANDS, COLOURS, SEASONS

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# CLIP's pre-tokenisation pattern (lower-cased text).
CLIP_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def fashion_corpus() -> list[str]:
    """Built-in fashion vocabulary, enough to tokenise catalog names and prompts without unknown words."""
    words = [*COLOURS, *ARTICLES, *BRANDS, *SEASONS]
    for spec in ARTICLES.values():
        words += [spec.master, spec.sub, spec.noun, *spec.genders, *spec.usages, *spec.styles]
    extra = ("a photo of a the an for with and men's women's kids unisex shoes shoe sneakers sandal flip flop "
             "t-shirt tshirt shirt top jeans trousers dress skirt bag handbag backpack watch cap hat tiger "
             "printed striped solid navy silver gold olive maroon cream beige charcoal product picture of "
             "girl boy man woman running casual formal sports party ethnic summer winter spring fall")
    return [" ".join(words), extra] * 4


def train_clip_tokenizer(corpus: Iterable[str], vocab_size: int = 2000) -> CLIPTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=EOS, end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CLIP_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    # Every byte as a word end ("x</w>"), listed up front: the trainer otherwise creates these ids in hash-map
    # order, which differs per process, and merge ties are broken by id, so the same corpus gave different
    # vocabularies and models from run to run (huggingface/tokenizers#1794). Listed, their ids are fixed.
    # They must exist anyway, or CLIP's BPE maps unseen word endings to <unk>.
    word_ends = [char + "</w>" for char in alphabet]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS, EOS, *word_ends],
                                  end_of_word_suffix="</w>", initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator([text.lower() for text in corpus], trainer)
    with tempfile.TemporaryDirectory() as tmp:
        tok.model.save(tmp)
        vocab_path = Path(tmp) / "vocab.json"
        vocab: dict[str, int] = json.loads(vocab_path.read_text())
        assert all(token in vocab for token in (*alphabet, *word_ends))
        return CLIPTokenizerFast(vocab_file=str(vocab_path), merges_file=str(Path(tmp) / "merges.txt"))
