"""Camera source identification by sensor fingerprints (PRNU): estimate a camera's
fingerprint from its photos, and tell whether a photo was taken by it (``prnu``)."""
