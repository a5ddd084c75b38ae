"""What the tests share: fakes and servers of their own, environments built on the
simulator, fixtures (registered in tests/conftest.py) and the programs the tests run as
subprocesses (``python -m tests.support.<name>``). No test module imports from another."""
