"""Datasets: LeRobot v3 reading and writing, demonstration generation, statistics, validation."""
