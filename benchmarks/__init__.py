"""numrep benchmark suite: ``python -m benchmarks`` (``make bench``).

Every scenario measures the exchange against a baseline in the same run and
reports ratios and percentiles; nothing asserts on time. See README.md here.
"""

SCENARIOS = (
    "lookup_cached",
    "telemetry_overhead",
    "lookup_cassandra",
    "batch_lookup",
    "sync",
    "publish_ingest",
    "hot_paths",
    "scale_out",
    "data_scale",
    "flag_flood",
    "refit",
    "clients",
)
