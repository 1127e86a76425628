"""The gRPC face of the exchange: thin servicers, one per microservice, plus
the interceptor that authenticates, authorises and maps errors."""
