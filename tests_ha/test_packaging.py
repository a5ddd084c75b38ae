"""HACS packaging: the manifest pins this SDK's version; the integration imports the SDK
only through its public names (no private module, no deprecated path)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import enphase_battery

ROOT = Path(__file__).parent.parent
INTEGRATION = ROOT / "custom_components" / "enphase_battery"
#: The SDK's public import paths: the top and its public sub-packages.
PUBLIC = {
    "enphase_battery",
    "enphase_battery.models",
    "enphase_battery.store",
    "enphase_battery.poll",
    "enphase_battery.quota",
    "enphase_battery.statistics",
    "enphase_battery.client",
    "enphase_battery.auth",
    "enphase_battery.live",
    "enphase_battery.simulator",
}


def test_manifest_and_hacs() -> None:
    manifest = json.loads((INTEGRATION / "manifest.json").read_text())
    assert manifest["domain"] == "enphase_battery"
    assert manifest["requirements"] == [f"enphase-battery=={enphase_battery.__version__}"]
    assert manifest["iot_class"] == "cloud_polling"
    assert manifest["config_flow"] is True
    assert "application_credentials" in manifest["dependencies"]
    assert manifest["version"]
    hacs = json.loads((ROOT / "hacs.json").read_text())
    assert hacs["name"]
    assert hacs["homeassistant"] == "2025.4.0"


def test_the_integration_imports_only_public_sdk_paths() -> None:
    for path in INTEGRATION.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                module = node.module
            elif isinstance(node, ast.Import):
                module = next((a.name for a in node.names if a.name.startswith("enphase")), "")
            else:
                continue
            if module.startswith("enphase_battery"):
                assert module in PUBLIC, f"{path.name} imports {module}"
                if isinstance(node, ast.ImportFrom):
                    assert not any(a.name.startswith("_") for a in node.names), path.name
