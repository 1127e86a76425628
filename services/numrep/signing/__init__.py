"""Keys, signed labels (compact JWS) and bearer tokens. Plain Python: no gRPC, no store."""
