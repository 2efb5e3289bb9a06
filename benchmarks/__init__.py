"""Scale and latency benchmarks of the operator against the real local control plane (and a real Prometheus).

`python -m benchmarks [lag|scale|prometheus]`; results and the machine they ran on are in RESULTS.md.
These are measurements, not tests: they report the goals they miss instead of failing.
"""
