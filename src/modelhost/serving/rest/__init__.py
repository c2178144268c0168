"""REST protocol adapters."""
