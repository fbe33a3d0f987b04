"""Thin torch module over the store: datasets read stored feeds by their schemas/ names."""
