"""gradlint: a static linter for PyTorch training loops."""

__version__ = "0.1.0"
# where the source, the tags the pre-commit snippet names and the rule pages (docs/rules/) live
REPOSITORY = "https://github.com/gradlint/gradlint"
