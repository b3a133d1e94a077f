"""cdnstore's benchmarks: one module per scenario, run by `python3 dev.py bench` (bench/run.py, the runner).

Each figure is measured beside a floor in the same run where it has one; the helper programs the scenarios
start (the floor's bare aiohttp server, a job worker, a command timed with its children's rusage) are
modules of this package run with `python -m bench.<name>` from the checkout's root.
"""
