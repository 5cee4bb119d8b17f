"""`python starter.py demo`: the whole system in one command (see `cli.demo.run`)."""

from cli.demo.run import run_demo

__all__ = ["run_demo"]
