"""`python -m agent.lab.partner --listen HOST:PORT --state-dir DIR`: how `lab up` starts the emulator."""

from agent.lab.partner.emulator import main

main()
