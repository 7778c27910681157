"""The rerank service: local features, the visual-word index and diffusion state."""
