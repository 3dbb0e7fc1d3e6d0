"""One folder per database dialect (``postgres/``, ``mssql/``): connect, source, target; the Dialect
records and the registry that opens a Source or Target for an endpoint.
"""
