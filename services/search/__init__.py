"""The search service: the ANN index, the id map and their persistence."""
