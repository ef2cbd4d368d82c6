"""Helpers the tests share: recorded sleeps, fake-API scripts, sample audit entries, landing
invariants, throwaway database servers, the secret scanner and the kill test's child process.

pytest puts ``tests/`` on ``sys.path`` (``pythonpath`` in pyproject.toml), so tests import these as
``support.<module>`` wherever they live; the repo root stays off the path, so a compatibility cell
still tests the installed wheel, not the checkout.
"""
