"""The web side of the daemon: the Manager (SPEC §8) and /metrics, on the management address.

app.py builds the application (its docstring lists the routes); guard.py holds the checks every
request passes; users.py, sessions.py, csrf.py and throttle.py the login; operator.py what an
admin can do; views.py and live.py the live pages; pages/ one module per page.
"""
