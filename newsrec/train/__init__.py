"""newsrec.train."""
