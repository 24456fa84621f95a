"""Reproducible benchmarks. `make bench` (python -m benchmarks [NAME ...]) runs them.

Each `benchmarks/bench_<name>.py` module has a `main() -> None` that measures its subject
and a baseline in the same run and prints the ratios; results are kept by hand in
benchmarks/README.md.
"""
