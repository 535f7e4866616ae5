#!/bin/sh
# stand-in for the vendor install.sh: step tests only upload it
echo "Installing ISPmanager 6"
