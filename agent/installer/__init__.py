"""The vendor's automatic installer (install.sh): settings, command line, failure classes."""
