"""Mechanisms shared by every service. Imports no service."""
