"""Masking strategies, one module each, and the explicit registry."""
