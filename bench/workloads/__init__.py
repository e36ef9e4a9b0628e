"""One module per workload; each exposes ``run(ctx) -> dict`` (rows and notes for the report)."""

from __future__ import annotations

NAMES = ["imports", "append", "restore", "turn", "s3", "concurrency", "crash"]
