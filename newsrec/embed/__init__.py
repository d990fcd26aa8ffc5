"""newsrec.embed."""
