"""Thin FastAPI services over the imsearch core."""
