"""gameday: failover game days for multi-region active-active serverless backends."""

__version__ = "0.1.0"
