"""A deterministic simulation of the worker's group under overlapping faults (`make simulate`)."""
