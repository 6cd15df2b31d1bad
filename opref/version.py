"""The one place opref's version is written."""

__version__ = "0.1.0"
