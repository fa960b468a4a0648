import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_generated_from_current_help():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "cli_docs.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_example_configs_are_generated_from_the_settings_models():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "example_configs.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_example_config_loads():
    from ehrforge.config import load_config

    for path in sorted((ROOT / "examples").glob("*.yaml")):
        assert load_config(path).task == path.stem
