"""Stage three: query expansion, DBA, diffusion, and local-feature verification."""
