"""Names load on first use: the public API is all there, and start-up pays only for what it uses.

``enphase_battery`` and ``enphase_battery.simulator`` resolve their names through a module
``__getattr__``; the static imports (for type checkers), the runtime table and ``__all__``
must name the same things, or a name would be missing at run time or to mypy.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import enphase_battery
import enphase_battery.simulator

PACKAGES = [enphase_battery, enphase_battery.simulator]


def _type_checking_imports(module: ModuleType) -> set[str]:
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom)
                names.update(alias.asname or alias.name for alias in statement.names)
    return names


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_static_imports_runtime_table_and_all_agree(package: ModuleType) -> None:
    table = package._SUBMODULE
    exported = set(package.__all__) - {"__version__"}
    assert set(table) == exported, "add the name to _SUBMODULE and __all__ together"
    assert _type_checking_imports(package) == exported, "and to the TYPE_CHECKING imports"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_every_public_name_is_the_object_its_module_defines(package: ModuleType) -> None:
    for name, module in package._SUBMODULE.items():
        source = importlib.import_module(module, package.__name__)
        assert getattr(package, name) is getattr(source, name), name
    assert set(package.__all__) <= set(dir(package))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'EnphaseClientt'"):
        _ = enphase_battery.EnphaseClientt  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        exec("from enphase_battery import NotAThing", {})


def _loaded_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stdout.split())


HEAVY = {"sqlite3", "aiohttp.web", "enphase_battery.simulator.server", "enphase_battery.cli"}


def test_the_client_loads_without_sqlite_the_simulator_the_poller_or_the_cli() -> None:
    loaded = _loaded_after("from enphase_battery import EnphaseClient")
    assert "enphase_battery.client" in loaded
    assert not loaded & (HEAVY | {"enphase_battery.poller", "enphase_battery.fleet"})


def test_the_poller_loads_without_sqlite_until_a_sqlite_checkpoint_is_used() -> None:
    loaded = _loaded_after("from enphase_battery import TelemetryPoller")
    assert "enphase_battery.poller" in loaded
    assert not loaded & HEAVY
    loaded = _loaded_after(
        "import asyncio, tempfile, os\n"
        "from enphase_battery import SqliteCheckpoint\n"
        "cp = SqliteCheckpoint(os.path.join(tempfile.mkdtemp(), 'c.sqlite'))\n"
        "asyncio.run(cp.load('k'))\n"
        "asyncio.run(cp.close())"
    )
    assert "sqlite3" in loaded


def test_cli_help_loads_neither_the_simulator_nor_the_web_server() -> None:
    code = (
        "import sys, contextlib, io\n"
        "sys.argv = ['enphase-battery', '--help']\n"
        "from enphase_battery.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "    main()\n"
        "assert 'simulate' in out.getvalue(), out.getvalue()\n"
    )
    loaded = _loaded_after(code)
    assert "enphase_battery.cli.parser" in loaded
    assert not loaded & {"aiohttp.web", "enphase_battery.simulator.server", "sqlite3"}


def test_live_data_token_retries_and_cattrs_load_on_first_use() -> None:
    # Start-up does not pay for the live package, the SSE decoder, backoff or cattrs: they
    # load with the first live stream, token request or answer (the live, token and client
    # tests exercise the imports where they are used).
    loaded = _loaded_after("from enphase_battery import EnphaseClient, TelemetryPoller")
    assert not loaded & {"enphase_battery.live", "enphase_battery.sse", "backoff", "cattrs"}
