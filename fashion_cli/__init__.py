"""The `fashion-search` command line."""
