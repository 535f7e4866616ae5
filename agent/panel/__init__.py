"""What ispagent knows about an ISPmanager panel on a host: preflight rules, mgrctl output."""
