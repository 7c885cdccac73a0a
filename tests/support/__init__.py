"""Test support: synthetic signals, the tiny fixture models and the script that makes them, and a
private PulseAudio server. Importable as `support` from the tests (pytest puts tests/ on the path)."""
