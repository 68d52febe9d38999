"""`kvbench jepsen`: fault injection against a real cluster, with history checkers.

cli.py wires the run: control.py starts the members (kvstore, etcd or a command template),
net.py cuts and slows their links (network namespaces or loopback TCP proxies), nemesis.py
schedules the faults, workload.py drives clients and records every operation in a
history.History, and checker_linear.py, checker_watch.py and checker_misc.py judge that
history. report.py and plots.py write the results directory. Only the public client
library (api.client) and process control are used, so etcd is judged like kvstore.
"""
