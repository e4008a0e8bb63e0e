"""HTTP layer: the spec's endpoints, one module per resource, dispatched from `routes.py`."""
