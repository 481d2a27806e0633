"""Asterisk and FreePBX configuration rendering (pure): ``render(settings, target)``."""
