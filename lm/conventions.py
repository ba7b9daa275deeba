"""The names every layer shares for what N counts, what a budget counts, and which precision a run computes in.

Plain tuples and strings (no torch), so a CLI can offer them as choices and defaults while `--help` stays
instant. The counting itself lives in lm/accounting.py; docs/methods.md gives the reasons.
"""

N_CONVENTIONS = ("non_embedding", "total", "with_head")
# The one default everywhere (spec, sweep files, shapes, CLI): every parameter that does a matmul per token,
# the output head included, which Porian et al. (2024) show reconciles Kaplan's and Chinchilla's exponents.
DEFAULT_N_CONVENTION = "with_head"
FLOP_CONVENTIONS = ("exact",) + tuple(f"6N_{c}" for c in N_CONVENTIONS)
# What a sweep's budgets count (`compute:` in a sweep file, `compute` in a spec): the exact FLOPs above, or 6·N
# under the sweep's n_convention. Exact is the default: at small sizes the head and attention make real compute
# 11-52% more than 6·N_with_head (docs/methods.md, "Compute: which C").
COMPUTE_CONVENTIONS = ("exact", "6N")
DEFAULT_COMPUTE = "exact"
PRECISIONS = ("fp32", "bf16")  # what a run computes in (lm.accounting sizes memory for each)
PRECISION_CHOICES = ("auto",) + PRECISIONS  # what a config may ask for; auto: bf16 on CUDA, else fp32
