"""Baseline approaches: classical models, the prompted LLM ladder and RAG."""
