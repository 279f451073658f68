"""Scanning: walk -> sniff -> analyzers -> report."""
