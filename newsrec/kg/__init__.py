"""newsrec.kg."""
