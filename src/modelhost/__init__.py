"""modelhost: a self-hosted AI model as a service platform."""

__version__ = "0.1.0"
