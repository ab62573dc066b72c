"""The harness: what runs protocols for tests and tools rather than for applications.

The in-memory network with faults (network.py), scenario files and simulations
(simulation.py), systematic exploration against invariants (explore.py), and message
sequence charts (msc.py). Generated code never imports it.
"""
