"""ipintel: PostgreSQL-native, three-tier IP enrichment for Cowrie honeypot data."""

__version__ = "0.1.0"
