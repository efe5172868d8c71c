"""`dockyard`: Docker's command line over the Engine API. Imports only what a command needs."""
