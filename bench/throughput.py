from __future__ import annotations
def throughput(cfg, backend): return []
