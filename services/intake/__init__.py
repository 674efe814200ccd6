"""The intake service: accepts DICOM submissions into quarantine."""
