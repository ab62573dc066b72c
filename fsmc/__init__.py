"""fsmc: a compiler for protocols written in the pEp FSM DSL (draft-pep-keysync, A.1)."""

__version__ = "0.1.0"
