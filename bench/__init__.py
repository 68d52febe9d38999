"""kvbench: micro-benchmarks, load workloads and fault injection."""
