"""Shared core of fashion-search: catalog, captions, CLIP model loading/encoding, vector indexes, settings.

Every other package (services, indexer, training, the CLI) imports this one; it imports none of them.
"""

__version__ = "0.1.0"
