"""PostgreSQL: ADBC connections, the catalog and RecordBatch reader, the bulk-ingest (COPY) writer."""
