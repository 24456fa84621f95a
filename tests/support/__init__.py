"""Helpers shared by the test suites: waiting on conditions, real servers, the cluster."""
