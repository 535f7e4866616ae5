#!/bin/sh
# Emulated pkgupgrade.sh (ispagent lab): nothing to upgrade.
echo "All packages are up to date"
