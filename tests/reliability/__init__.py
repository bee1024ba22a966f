"""Fault, load and bad-input suite: nothing is lost, nothing stored is harmed."""
