from __future__ import annotations
def thousand(cfg, backend): return []
