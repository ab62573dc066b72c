"""The protocols fsmc carries: one subpackage each, found by runtime.registry through the
`PROTOCOL` manifest it defines (docs/protocols.md says how to add one)."""
