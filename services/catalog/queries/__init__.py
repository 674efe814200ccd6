"""The catalog's reads for its API (no writes): who may see what (access), NBIA's
listings (nbia) and DICOMweb searches (dicomweb)."""
