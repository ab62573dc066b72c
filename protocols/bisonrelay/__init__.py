"""BisonRelay (companyzero/bisonrelay): its KEM, sntrup4591761, and its P2P key exchange."""
