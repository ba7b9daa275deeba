"""lm: the language-model core every run uses (imports nothing else of ours)."""
