"""mpENC group key agreement: CLIQUES (x25519) and ASKE (ed25519), as pure functions."""
