"""ispagent: roll out licensed ISPmanager 6 panels to fleets of servers over SSH."""

__version__ = "0.1.0"
