"""The scheduler: jobs that run by themselves at an interval, one process at a time.

`core.py` decides when a job is due and runs it under a lease that the store grants to one
holder at a time (`ports.py`); `jobs.py` lists the jobs pkiforge runs. Neither knows SQL or
HTTP: the store adapter is store/scheduler_repos.py, the composition root wires them.
"""
