"""Operator-side code that is not an activity: the command context, intake, the demo, the report."""
