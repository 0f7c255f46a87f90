"""CLIP checkpoint loading (``resolve``, ``encoder``), the batch encoder and the model card."""
