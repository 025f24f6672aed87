"""`python -m gradlint.trace script.py ARGS`: the same as `gradlint trace script.py ARGS`."""

from gradlint.trace.command import trace

if __name__ == "__main__":
    trace(prog_name="python -m gradlint.trace")
