"""The package version, in a module of its own so that any module can import it without
importing the package's public API (softbpr/__init__.py imports most modules). Keep it equal to
`version` in pyproject.toml."""

__version__ = "0.1.0"
