"""Data files of the tool-use envs (a package, so that wheels ship them as package data)."""
