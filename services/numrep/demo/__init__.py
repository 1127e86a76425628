"""The demo federation (``make run``): real FTC complaints seeded through the real RPCs."""
