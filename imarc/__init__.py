"""imarc: an open platform for running a public medical imaging archive."""

__version__ = "0.1.0"
