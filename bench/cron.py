from __future__ import annotations
def cron_at_scale(cfg, backend): return []
