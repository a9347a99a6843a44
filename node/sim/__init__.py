"""Deterministic simulator: N replicas on a virtual clock, an in-memory network with seeded
faults, Byzantine behaviours and invariant checkers. A run is a pure function of
(validators, scenario, seed); ``lanenet sim`` (``runner.main``) runs many seeds.

Read in this order:

* ``scenarios``  named scenarios (happy, lossy, partition, crash, leader-crash, byzantine,
                 twins, mixed): what goes wrong, when, and the simulated ProtocolConfig
* ``harness``    the run: effects driver, timers, crash/restart from persisted records,
                 early stop once recovered; ``hosts`` holds keys, hosts and instances
* ``clock``      virtual time (microseconds), one event heap ordered by (time, seq)
* ``network``    per-link seeded latency, loss, duplication, partitions, delivery filters
* ``byzantine``  behaviours wrapping a real replica's traffic (equivocation, forks, ...)
* ``clients``    seeded transaction load into every lane
* ``invariants`` the monitor and the pure checkers; ``checks`` runs them over a run
* ``metrics``    commits, fast-path ratio, commit latency in message delays, hangover
* ``runner``     the command line: seeds, worker processes, replay commands, final JSON
"""
