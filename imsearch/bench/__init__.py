"""The benchmarks of docs/BENCHMARKS.md, in one place: each module measures one thing and
writes JSON rows (``imsearch bench …`` or ``python -m imsearch.bench.<name>``; ``make bench-*``
runs them). Above the core and the services — a benchmark may drive real service processes and
their messages — and below nothing but the command line; the evaluation harness they build on
(datasets, metrics, the eval runner) stays in :mod:`imsearch.evaluate`.
"""
