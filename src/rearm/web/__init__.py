"""The web side of the daemon: /metrics today, the Manager later (SPEC §8)."""
