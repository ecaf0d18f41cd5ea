"""Secret stores for join tokens: one module per backend, chosen by URI scheme."""
