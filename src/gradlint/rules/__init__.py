"""The rules: one module each (`glNNN_name.py`) with its docs next to its check.

`registry.RULES` holds the rules themselves; `catalogue.CATALOGUE` their codes, names and
trigger words for code that must not pay for importing the analysis.
"""
