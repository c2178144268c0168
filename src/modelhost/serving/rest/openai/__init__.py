"""OpenAI-compatible API (/v1): models, completions, chat completions, embeddings."""
