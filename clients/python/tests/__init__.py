"""The Python client's tests: python3 -m unittest discover -s tests -t . (from clients/python)."""
