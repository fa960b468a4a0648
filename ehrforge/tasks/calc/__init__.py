"""The ``calc`` recipe: medical calculators, SFT warm-up then GRPO with verifiable rewards (MedCalc-Bench scoring)."""
