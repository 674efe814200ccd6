"""Packaged reference tables of the de-identification engine (see PROVENANCE.md)."""
