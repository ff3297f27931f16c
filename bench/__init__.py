"""dagctl's benchmarks: `python -m bench --help` (see BENCHMARKS.md)."""
