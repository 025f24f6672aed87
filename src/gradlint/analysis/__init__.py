"""Gradient-flow analysis: recognise gradient events in a CST and follow them along paths."""
