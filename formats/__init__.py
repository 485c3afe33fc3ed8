"""Byte-level codecs. No model knowledge lives here."""
