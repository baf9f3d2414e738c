"""The benchmark suite: `make bench` (python -m bench) regenerates docs/benchmarks.md."""
