"""The ARI-compatible PBX simulator (see docs/simulator.md).

``operadora.sim.server`` starts it; ``media`` and ``lines`` are the hook for simulated devices;
``callers`` and ``faults`` build on it.
"""
