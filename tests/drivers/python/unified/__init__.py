"""MongoDB's unified test format (the parts the CRUD spec tests use),
executed with pymongo. `unified_runner.py` is its command line."""
