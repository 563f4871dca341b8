"""The analysis: statistics, tables, figures and the report, from a results folder alone (no torch)."""
