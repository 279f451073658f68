"""assay: forensic evidence for abuse made with generative AI.

Known-material matching (PDQ/MD5/SHA-256 against hash banks), image provenance
and model-file forensics. Files are always treated as data, never as code.
"""

__version__ = "0.1.0"
