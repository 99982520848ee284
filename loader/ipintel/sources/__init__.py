"""Enrichment sources: each reads or fetches one source and yields rows for its staging table."""
