"""deid: de-identifies quarantined instances into the curation zone (PS3.15 Annex E)."""
