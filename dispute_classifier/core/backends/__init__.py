"""LLM backends: an OpenAI-compatible API client and an in-process transformers model.

Both take chat messages from `dispute_classifier.core.prompts` and return `Prediction`s whose
label is one of the task's labels (or `INVALID` in unconstrained mode).
"""
