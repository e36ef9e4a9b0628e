"""Benchmarks of mooring against the pinned strands-agents package, side by side in one run.

``python -m bench`` (``make bench``) runs every workload and writes ``bench/results/latest.md``
and ``latest.json``; ``--quick`` runs each workload small and writes ``quick.*`` instead.
See ``bench/README.md`` for what each workload measures and how the stored data is built.
"""
