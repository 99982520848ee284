-- From sql/010_schemas.sql
-- Schemas and extensions. Everything ipintel owns lives in schema ipintel; what the loader
-- writes before a merge lives in ipintel_staging, which analysts never need to read.

-- btree_gist gives GiST operator classes for scalar types (text equality, on host(ip)), needed by the
-- exclusion constraint that keeps one IP's ASN history free of overlapping ranges. It is a
-- shared, database-wide extension: created if missing, never dropped by ipintel.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE SCHEMA ipintel;
COMMENT ON SCHEMA ipintel IS
    'ipintel: three-tier IP enrichment for Cowrie honeypot data (asn_inventory -> ip_inventory -> session_summaries).';

CREATE SCHEMA ipintel_staging;
COMMENT ON SCHEMA ipintel_staging IS
    'ipintel loader staging: UNLOGGED tables filled with COPY and emptied by the merge functions. Not for analysts.';
