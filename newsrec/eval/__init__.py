"""newsrec.eval."""
