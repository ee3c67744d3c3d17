"""Reading a fit's draws: convergence diagnostics, capacity types and transitions, comparisons.

Functions here take a fit's DataTree (or a fit) and the spec; none samples.
"""
