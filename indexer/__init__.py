"""Celery workers that batch-embed a catalog into Qdrant/FAISS; in-process when no Redis is configured."""
