"""The public catalog: an index of published collections, patients, studies, series and
instances, served through the NBIA-compatible search API."""
