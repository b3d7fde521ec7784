"""Fine-tuning: LoRA / QLoRA recipes, the SFT training script, pre-flight checks, the
fine-tuned classifier and the registry of saved adapters."""
