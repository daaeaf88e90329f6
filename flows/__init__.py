"""The cxstream dataflow, its steps, settings and command line."""
