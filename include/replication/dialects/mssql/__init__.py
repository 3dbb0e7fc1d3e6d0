"""SQL Server: pymssql connections, the catalog and RecordBatch reader, the chunked executemany writer,
and the pymssql value conversions.
"""
