import subprocess
import sys


def test_the_robot_side_imports_without_torch():
    """The client and broker must run on a robot computer with numpy, msgpack and websockets only."""
    code = ("import sys; sys.modules['torch'] = None; sys.modules['robosuite'] = None; sys.modules['transformers'] = None\n"
            "from pokevla.serve.client import PolicyClient\nfrom pokevla.serve.broker import ActionChunkBroker\n"
            "import pokevla.serve.protocol\nprint('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
