"""Scripted expert of LIBERO: solves tasks from the BDDL goal with privileged simulator state."""
