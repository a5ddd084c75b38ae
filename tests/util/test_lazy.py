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
import enphase_battery.poll
import enphase_battery.simulator
import enphase_battery.store
from enphase_battery.util import lazy
from tests.support.cli import without_coverage

#: Packages whose names are listed once, in their TYPE_CHECKING imports.
LISTED_ONCE = [enphase_battery, enphase_battery.store, enphase_battery.poll]


def _type_checking_imports(module: ModuleType) -> dict[str, str]:
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text())
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom)
                assert statement.module is not None
                for alias in statement.names:
                    names[alias.asname or alias.name] = statement.module
    return names


@pytest.mark.parametrize("package", LISTED_ONCE, ids=lambda p: p.__name__)
def test_the_one_list_is_read_as_python_reads_it(package: ModuleType) -> None:
    # util.lazy reads the TYPE_CHECKING block with a regular expression (ast costs more
    # than the import itself): it must find what the parser finds, module included.
    assert package.__file__ is not None
    found = lazy._table(Path(package.__file__).read_text())
    assert found == _type_checking_imports(package)
    assert set(package.__all__) - {"__version__"} == set(found)


@pytest.mark.parametrize("package", LISTED_ONCE, ids=lambda p: p.__name__)
def test_every_public_name_is_the_object_its_module_defines(package: ModuleType) -> None:
    for name, module in _type_checking_imports(package).items():
        assert getattr(package, name) is getattr(importlib.import_module(module), name), name
    assert set(package.__all__) <= set(dir(package))


def test_the_package_top_keeps_about_45_names() -> None:
    assert len(enphase_battery.__all__) <= 45


def test_the_simulators_table_and_all_agree() -> None:
    sim = enphase_battery.simulator
    assert set(sim._SUBMODULE) == set(sim.__all__)
    for name, module in sim._SUBMODULE.items():
        source = importlib.import_module(module, sim.__name__)
        assert getattr(sim, name) is getattr(source, name), name


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'EnphaseClientt'"):
        _ = enphase_battery.EnphaseClientt  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        exec("from enphase_battery import NotAThing", {})


def _loaded_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=without_coverage(),
    )
    return set(done.stdout.split())


HEAVY = {"sqlite3", "aiohttp.web", "enphase_battery.simulator.server", "enphase_battery.cli"}


def test_the_client_loads_without_sqlite_the_simulator_the_poller_or_the_cli() -> None:
    loaded = _loaded_after("from enphase_battery import EnphaseClient")
    assert "enphase_battery.client" in loaded
    assert not loaded & (HEAVY | {"enphase_battery.poll.poller", "enphase_battery.poll.fleet"})


def test_the_poller_loads_without_sqlite_until_a_sqlite_checkpoint_is_used() -> None:
    loaded = _loaded_after("from enphase_battery import TelemetryPoller")
    assert "enphase_battery.poll.poller" in loaded
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
    assert not loaded & {"enphase_battery.live", "enphase_battery.http.sse", "backoff", "cattrs"}
