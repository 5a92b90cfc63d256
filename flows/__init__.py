"""Prefect flows: they order the stages and nothing else."""
