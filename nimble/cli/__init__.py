"""Console scripts: ``nimble-db`` (records database); each module exposes ``main(argv=None)``."""
