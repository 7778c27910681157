"""The extractor service: image bytes in, descriptors out (GPU when present)."""
