"""newsrec.data."""
