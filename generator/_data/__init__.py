"""Data that ships with k10fleet (templates/, schemas/), read through importlib.resources."""
