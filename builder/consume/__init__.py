"""Consume: the hash-pinned lock, Dockerfile lines, and ``prewheel verify`` in target images."""
