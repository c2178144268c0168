"""Throwaway real servers (PostgreSQL, S3) that tests start and stop themselves."""
