"""Lifecycle steps shared by every task: backends, data, sft, grpo, evaluate, serve."""
