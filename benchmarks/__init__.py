"""Throughput, latency and scaling harness; results land in benchmarks/results/."""
