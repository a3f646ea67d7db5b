"""The version rnnconvert writes into the files it produces (producer fields, metadata)."""
__version__ = "0.1.0"
