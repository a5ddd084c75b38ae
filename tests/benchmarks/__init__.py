"""Tests of benchmarks/: every script still runs (smoke) and the shared table adds up."""
