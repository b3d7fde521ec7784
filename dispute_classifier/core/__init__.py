"""The core layer: the `Classifier` contract, typed config, tasks and data, the one prompt
builder, LLM backends, costs and prices, and the registries of approaches and backends.

Nothing here imports a higher layer (baselines, evaluation, finetune, dashboard, commands).
"""
