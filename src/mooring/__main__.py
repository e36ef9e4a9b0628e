from mooring.cli import entrypoint

entrypoint()
