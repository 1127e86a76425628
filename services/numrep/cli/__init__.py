"""The ``numrep`` command line."""
