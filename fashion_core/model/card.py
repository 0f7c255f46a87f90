"""The model card: ``model_card.json`` in a checkpoint folder, written by ``training`` (the recipe, data split,
vocabulary and validation figures that made the weights) and read back by the encoder as ``ModelInfo.card``."""

CARD_FILE = "model_card.json"
