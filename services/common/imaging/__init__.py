"""Images for people who review them: frames rendered from pixel data (windowed, PNG or
WebP) and the boxes where text is burned into them (OCR). Pure functions of a file's
bytes, shared by qc (curated instances) and deid (instances held for their pixels)."""
