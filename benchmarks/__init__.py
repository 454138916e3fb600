"""Benchmarks of the pipeline's hot paths (`make bench`); each writes results/bench/<name>.json."""
