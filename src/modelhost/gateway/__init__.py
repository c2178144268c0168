"""The gateway: API keys and scopes, rate limits and budgets, usage metering, audit, encryption at rest."""
