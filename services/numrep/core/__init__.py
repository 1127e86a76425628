"""The domain core: numbers, categories, labels, verdicts and reconciliation.

Nothing here imports gRPC, protobuf or a database driver.
"""
