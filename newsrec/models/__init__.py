"""newsrec.models."""
